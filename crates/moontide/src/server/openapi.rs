//! The OpenAPI 3 document of the HTTP API, served at `/api/v1/openapi.json`.

/// The document.
pub const DOCUMENT: &str = r##"{
  "openapi": "3.0.3",
  "info": {
    "title": "Moontide",
    "version": "1",
    "description": "The API of a running `moontide run`. Every request needs `Authorization: Bearer TOKEN`; a `viewer` token reads, an `operator` token also changes. Errors are JSON {\"error\": \"...\"}. Times are Unix milliseconds."
  },
  "components": {
    "securitySchemes": { "token": { "type": "http", "scheme": "bearer" } },
    "schemas": {
      "Error": { "type": "object", "properties": { "error": { "type": "string" } }, "required": ["error"] },
      "Policy": {
        "type": "object",
        "properties": {
          "name": { "type": "string" },
          "target": { "type": "string" },
          "interval_ms": { "type": "integer" },
          "min": { "type": "integer" },
          "max": { "type": "integer" },
          "current": { "type": "integer", "nullable": true },
          "ready": { "type": "integer", "nullable": true },
          "desired": { "type": "integer", "nullable": true },
          "last_decision": { "type": "object", "nullable": true, "properties": { "at": { "type": "integer" }, "outcome": { "type": "string" }, "reason": { "type": "string" } } },
          "next_tick": { "type": "integer", "nullable": true },
          "paused": { "type": "object", "nullable": true, "properties": { "by": { "type": "string" }, "reason": { "type": "string" }, "since": { "type": "integer" } } },
          "dry_run": { "type": "boolean" },
          "hold": { "type": "object", "nullable": true, "properties": { "replicas": { "type": "integer" }, "until": { "type": "integer" }, "by": { "type": "string" }, "reason": { "type": "string" } } },
          "error": { "type": "string", "nullable": true, "description": "The last decision's failure or failed reading, if any." }
        }
      },
      "Decision": { "type": "object", "description": "One tick's full record: inputs, checks, guards, outcome, actuation and reason (as `moontide history --json` prints)." }
    },
    "responses": {
      "Unauthorized": { "description": "No token, or an unknown one.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Forbidden": { "description": "The token's role may not do this.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "NotFound": { "description": "No such policy.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Conflict": { "description": "In a cluster: the policy's settings were changed through another instance meanwhile; they stand, send the change again.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "Unavailable": { "description": "In a cluster: etcd is out of reach; nothing was changed.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "BadRequest": { "description": "A malformed body or parameter; the message says which.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } },
      "PolicyChanged": { "description": "The policy after the change, with `done` saying what changed.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Policy" } } } }
    },
    "parameters": {
      "name": { "name": "name", "in": "path", "required": true, "schema": { "type": "string" } }
    }
  },
  "security": [{ "token": [] }],
  "paths": {
    "/api/v1/policies": {
      "get": { "summary": "Every policy and its state (viewer).", "responses": {
        "200": { "description": "The policies.", "content": { "application/json": { "schema": { "type": "object", "properties": { "policies": { "type": "array", "items": { "$ref": "#/components/schemas/Policy" } } } } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" } } }
    },
    "/api/v1/policies/{name}": {
      "get": { "summary": "One policy, with its last decision in full (viewer).", "parameters": [{ "$ref": "#/components/parameters/name" }], "responses": {
        "200": { "description": "The policy.", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Policy" } } } },
        "401": { "$ref": "#/components/responses/Unauthorized" }, "404": { "$ref": "#/components/responses/NotFound" } } }
    },
    "/api/v1/policies/{name}/decisions": {
      "get": { "summary": "Decision history, newest first, paged (viewer).", "parameters": [
          { "$ref": "#/components/parameters/name" },
          { "name": "since", "in": "query", "schema": { "type": "string" }, "description": "RFC 3339 time or Unix ms, inclusive." },
          { "name": "until", "in": "query", "schema": { "type": "string" }, "description": "RFC 3339 time or Unix ms, exclusive; pass `next_until` for the next page." },
          { "name": "outcome", "in": "query", "schema": { "type": "string", "enum": ["hold", "scaled", "dry_run", "deferred", "skipped", "failed"] } },
          { "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 1000, "default": 100 } }
        ], "responses": {
        "200": { "description": "A page.", "content": { "application/json": { "schema": { "type": "object", "properties": { "decisions": { "type": "array", "items": { "$ref": "#/components/schemas/Decision" } }, "next_until": { "type": "integer", "nullable": true } } } } } },
        "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "404": { "$ref": "#/components/responses/NotFound" } } }
    },
    "/api/v1/policies/{name}/pause": {
      "post": { "summary": "Pause: keep deciding, never change the count (operator).", "parameters": [{ "$ref": "#/components/parameters/name" }],
        "requestBody": { "content": { "application/json": { "schema": { "type": "object", "properties": { "reason": { "type": "string" } } } } } },
        "responses": { "200": { "$ref": "#/components/responses/PolicyChanged" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/api/v1/policies/{name}/resume": {
      "post": { "summary": "Resume a paused policy (operator).", "parameters": [{ "$ref": "#/components/parameters/name" }],
        "responses": { "200": { "$ref": "#/components/responses/PolicyChanged" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/api/v1/policies/{name}/override": {
      "post": { "summary": "Hold a count until a time, whatever the checks say; recorded in every decision while it lasts (operator).", "parameters": [{ "$ref": "#/components/parameters/name" }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["replicas", "reason"], "properties": {
          "replicas": { "type": "integer", "description": "Within the policy's min and max." },
          "reason": { "type": "string", "description": "Required, 1 to 500 characters." },
          "until": { "type": "string", "description": "RFC 3339 time or Unix ms (or give `for`)." },
          "for": { "type": "string", "description": "A duration such as \"30m\" (or give `until`); at most 7 days." } } } } } },
        "responses": { "200": { "$ref": "#/components/responses/PolicyChanged" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "503": { "$ref": "#/components/responses/Unavailable" } } },
      "delete": { "summary": "End a hold now (operator).", "parameters": [{ "$ref": "#/components/parameters/name" }],
        "responses": { "200": { "$ref": "#/components/responses/PolicyChanged" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/api/v1/policies/{name}/dry-run": {
      "post": { "summary": "Turn dry-run on or off, or back to the config with null (operator).", "parameters": [{ "$ref": "#/components/parameters/name" }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["enabled"], "properties": { "enabled": { "type": "boolean", "nullable": true, "description": "Under `run --dry-run` only true is taken (409 otherwise)." } } } } } },
        "responses": { "200": { "$ref": "#/components/responses/PolicyChanged" }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "404": { "$ref": "#/components/responses/NotFound" }, "409": { "$ref": "#/components/responses/Conflict" }, "503": { "$ref": "#/components/responses/Unavailable" } } }
    },
    "/api/v1/events": {
      "get": { "summary": "Server-Sent Events: one `decision` event per decision, as it is made (viewer).", "parameters": [{ "name": "policy", "in": "query", "schema": { "type": "string" }, "description": "Only this policy's decisions." }],
        "responses": { "200": { "description": "An event stream.", "content": { "text/event-stream": { "schema": { "type": "string" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "404": { "$ref": "#/components/responses/NotFound" } } }
    },
    "/api/v1/audit": {
      "get": { "summary": "The audit log, newest first: who (token name) did or tried what (operator).", "parameters": [{ "name": "limit", "in": "query", "schema": { "type": "integer", "default": 100 } }],
        "responses": { "200": { "description": "Entries.", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" } } }
    },
    "/api/v1/openapi.json": {
      "get": { "summary": "This document (no token needed).", "security": [],
        "responses": { "200": { "description": "The OpenAPI 3 document.", "content": { "application/json": { "schema": { "type": "object" } } } } } }
    },
    "/api/v1/reload": {
      "post": { "summary": "Re-read the config file: checked and built first; a bad one is refused and the running config stays (operator).",
        "responses": { "200": { "description": "Reloaded.", "content": { "application/json": { "schema": { "type": "object" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" }, "403": { "$ref": "#/components/responses/Forbidden" }, "422": { "description": "The new config has problems; they are listed and the running config stays.", "content": { "application/json": { "schema": { "type": "object" } } } } } }
    },
    "/metrics": {
      "get": { "summary": "Moontide's own metrics, in the OpenMetrics text format Prometheus scrapes (viewer).",
        "responses": { "200": { "description": "Metrics.", "content": { "application/openmetrics-text": { "schema": { "type": "string" } } } }, "401": { "$ref": "#/components/responses/Unauthorized" } } }
    },
    "/push/{source}": {
      "post": { "summary": "Values for a `push` source, with that source's own token.", "security": [], "parameters": [{ "name": "source", "in": "path", "required": true, "schema": { "type": "string" } }],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "additionalProperties": { "type": "number" } } } } },
        "responses": { "200": { "description": "Accepted." }, "400": { "$ref": "#/components/responses/BadRequest" }, "401": { "$ref": "#/components/responses/Unauthorized" }, "404": { "description": "No such push source." }, "413": { "description": "The body is over 64 KiB." } } }
    }
  }
}"##;

#[cfg(test)]
mod tests {
    #[test]
    fn the_document_is_json_and_names_every_route() {
        let v: serde_json::Value = serde_json::from_str(super::DOCUMENT).unwrap();
        let paths = v["paths"].as_object().unwrap();
        // every route of api::routes() and the push endpoint
        for p in [
            "/api/v1/openapi.json",
            "/api/v1/policies",
            "/api/v1/policies/{name}",
            "/api/v1/policies/{name}/decisions",
            "/api/v1/policies/{name}/pause",
            "/api/v1/policies/{name}/resume",
            "/api/v1/policies/{name}/override",
            "/api/v1/policies/{name}/dry-run",
            "/api/v1/events",
            "/api/v1/audit",
            "/api/v1/reload",
            "/metrics",
            "/push/{source}",
        ] {
            assert!(paths.contains_key(p), "{p}");
        }
    }
}
