//! A whole pymacaron-style document through [`upgrade`].

use super::*;

fn pymacaron_spec() -> Value {
    json!({
        "swagger": "2.0",
        "info": {"title": "items", "version": "1.0"},
        "host": "api.example.com",
        "basePath": "/v1",
        "schemes": ["https"],
        "produces": ["application/json"],
        "x-owner": "team-a",
        "securityDefinitions": {
            "oauth_token": {"type": "apiKey", "in": "header", "name": "Authorization",
                            "x-authentication-scheme": "Bearer",
                            "x-bind-function": "pymacaron.auth.authenticate_http_request"}
        },
        "parameters": {
            "limit": {"name": "limit", "in": "query", "type": "integer", "minimum": 1},
            "NewItem": {"name": "item", "in": "body", "required": true, "schema": {"$ref": "#/definitions/NewItem"}}
        },
        "definitions": {
            "NewItem": {"type": "object", "required": ["name"],
                        "properties": {"name": {"type": "string"}, "note": {"type": "string", "x-nullable": true}}},
            "Item": {"allOf": [{"$ref": "#/definitions/NewItem"}, {"properties": {"id": {"type": "string"}}}]}
        },
        "paths": {
            "/items": {
                "post": {
                    "x-bind-server": "myservice.api.create_item",
                    "security": [{"oauth_token": []}],
                    "parameters": [{"$ref": "#/parameters/NewItem"}],
                    "responses": {"201": {"description": "created", "schema": {"$ref": "#/definitions/Item"}}}
                },
                "get": {
                    "x-bind-server": "myservice.api.list_items",
                    "parameters": [{"$ref": "#/parameters/limit"},
                                   {"name": "tags", "in": "query", "type": "array", "items": {"type": "string"}}],
                    "responses": {"200": {"description": "items", "schema": {"type": "array", "items": {"$ref": "#/definitions/Item"}}}}
                }
            },
            "/items/{item_id}": {
                "parameters": [{"name": "item_id", "in": "path", "type": "string", "required": true}],
                "get": {
                    "x-bind-server": "myservice.api.get_item",
                    "x-decorate-request": "myservice.api.log_it",
                    "responses": {"200": {"description": "the item", "schema": {"$ref": "#/definitions/Item"},
                                          "headers": {"X-Rate": {"type": "integer"}}}}
                }
            }
        }
    })
}

#[test]
fn a_pymacaron_spec_upgrades() {
    let up = upgrade(&pymacaron_spec()).expect("converts");
    let d = &up.document;
    assert_eq!(d["openapi"], "3.0.3");
    assert_eq!(d["x-owner"], "team-a");
    assert_eq!(d["servers"], json!([{"url": "https://api.example.com"}]));
    assert_eq!(
        d["components"]["securitySchemes"]["oauth_token"]["scheme"],
        "bearer"
    );
    assert_eq!(
        d["components"]["parameters"]["limit"]["schema"],
        json!({"type": "integer", "minimum": 1})
    );
    assert!(
        d["components"]["parameters"].get("NewItem").is_none(),
        "body parameters are inlined"
    );
    assert_eq!(
        d["components"]["schemas"]["NewItem"]["properties"]["note"]["nullable"],
        true
    );
    assert_eq!(
        d["components"]["schemas"]["Item"]["allOf"][0]["$ref"],
        "#/components/schemas/NewItem"
    );

    let post = &d["paths"]["/v1/items"]["post"];
    assert_eq!(post["operationId"], "create_item");
    assert_eq!(post["x-bind-server"], "myservice.api.create_item");
    assert_eq!(post["requestBody"]["required"], true);
    assert_eq!(
        post["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewItem"
    );
    assert_eq!(
        post["responses"]["201"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/Item"
    );

    let list = &d["paths"]["/v1/items"]["get"];
    assert_eq!(list["operationId"], "list_items");
    assert_eq!(
        list["parameters"][0]["$ref"],
        "#/components/parameters/limit"
    );
    assert_eq!(list["parameters"][1]["style"], "form");
    assert_eq!(
        list["parameters"][1]["explode"], false,
        "2.0 arrays are csv by default"
    );

    let get = &d["paths"]["/v1/items/{item_id}"]["get"];
    assert_eq!(get["operationId"], "get_item");
    assert_eq!(get["parameters"][0]["in"], "path");
    assert_eq!(get["parameters"][0]["schema"], json!({"type": "string"}));
    assert_eq!(
        get["responses"]["200"]["headers"]["X-Rate"]["schema"],
        json!({"type": "integer"})
    );
    assert!(
        d["paths"]["/v1/items/{item_id}"]
            .get("parameters")
            .is_none()
    );

    let notes: Vec<String> = up.notes.iter().map(ToString::to_string).collect();
    assert_eq!(notes.len(), 1, "{notes:#?}");
    assert!(
        notes[0].starts_with("paths./v1/items/{item_id}.get: x-decorate-request"),
        "{notes:#?}"
    );
}

#[test]
fn forms_and_bodies() {
    let spec = json!({
        "swagger": "2.0", "info": {"title": "t", "version": "1"},
        "paths": {"/upload": {"post": {
            "operationId": "upload",
            "parameters": [
                {"name": "file", "in": "formData", "type": "file", "required": true},
                {"name": "ids", "in": "formData", "type": "array", "items": {"type": "integer"}, "collectionFormat": "multi"},
                {"name": "tag", "in": "formData", "type": "string", "description": "a tag"}
            ],
            "responses": {"204": {"description": "stored"}}
        }}}
    });
    let up = upgrade(&spec).unwrap();
    let body = &up.document["paths"]["/upload"]["post"]["requestBody"];
    let s = &body["content"]["multipart/form-data"]["schema"];
    assert_eq!(
        s["properties"]["file"],
        json!({"type": "string", "format": "binary"})
    );
    assert_eq!(s["properties"]["tag"]["description"], "a tag");
    assert_eq!(s["required"], json!(["file"]));
    assert_eq!(body["required"], true);
    assert!(
        body["content"]["multipart/form-data"]
            .get("encoding")
            .is_none(),
        "multi is 3.0's default"
    );
    assert!(up.notes.is_empty(), "{:?}", up.notes);
    assert_eq!(up.document["servers"], json!([{"url": "/"}]));
}

#[test]
fn what_cannot_be_converted_is_said() {
    let dup = json!({
        "swagger": "2.0", "info": {"title": "t", "version": "1"},
        "paths": {
            "/a": {"get": {"x-bind-server": "m.one.fetch", "responses": {"200": {"description": "a"}}}},
            "/b": {"get": {"x-bind-server": "m.two.fetch", "responses": {"200": {"description": "b"}}}}
        }
    });
    let e = upgrade(&dup).expect_err("one operationId twice");
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .contains("GET /b: operationId fetch is also GET /a's"),
        "{}",
        e[0]
    );

    let not2 = upgrade(&json!({"openapi": "3.0.0"})).expect_err("not 2.0");
    assert!(
        not2[0].to_string().contains("expected \"2.0\""),
        "{}",
        not2[0]
    );

    let lossy = json!({
        "swagger": "2.0", "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"get": {
            "operationId": "a", "x-bind-server": "m.b",
            "parameters": [{"name": "ids", "in": "query", "type": "array", "items": {"type": "string"}, "collectionFormat": "tsv"}],
            "responses": {"200": {"schema": {"$ref": "common.yaml#/Thing"}}}
        }}}
    });
    let up = upgrade(&lossy).unwrap();
    let notes: Vec<String> = up.notes.iter().map(ToString::to_string).collect();
    let want = [
        "paths./a.get.parameters[0]: collectionFormat tsv",
        "paths./a.get.responses.200: a response without a description",
        "paths./a.get: operationId a is kept; x-bind-server m.b (→ b) is ignored",
        "another file",
    ];
    for w in want {
        assert!(notes.iter().any(|n| n.contains(w)), "{w} not in {notes:#?}");
    }
}
