//! The OpenAPI document: valid OpenAPI 3.1 (checked by openapi-spec-validator), every route of
//! the router in it and answering, every operation documenting its errors, and the docs page
//! working offline.

use std::path::PathBuf;

use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use crate::support::Api;

async fn document(api: &Api) -> Value {
    api.call(Method::GET, "/openapi.json", None, None)
        .await
        .expect(200)
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let api = Api::new().await;
    let doc = document(&api).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    let python = std::env::var("SB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let mut child = tokio::process::Command::new(&python)
        .args([
            "-c",
            "import json, sys\nfrom openapi_spec_validator import validate\nvalidate(json.load(sys.stdin))\nprint('valid')",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{python}: {e}; scripts/test makes target/sdk-venv with openapi-spec-validator"));
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(&serde_json::to_vec(&doc).unwrap())
        .await
        .unwrap();
    drop(stdin);
    let out = child.wait_with_output().await.unwrap();
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Paths the api's own source registers outside `routes!` (`.route("…")`).
fn routes_in_source() -> Vec<String> {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut dirs = vec![src];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                for part in text.split(".route(").skip(1) {
                    let literal = part.trim_start().trim_start_matches('"');
                    found.push(literal.split('"').next().unwrap().to_owned());
                }
            }
        }
    }
    found
}

#[tokio::test]
async fn every_route_is_documented_answers_and_lists_its_errors() {
    let api = Api::new().await;
    let doc = document(&api).await;
    let paths = doc["paths"].as_object().unwrap();
    for route in routes_in_source() {
        assert!(
            paths.contains_key(&route),
            "{route} is routed but not in /openapi.json"
        );
    }
    let mut operations = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            operations += 1;
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.contains_key("500"),
                "{method} {path} documents no 500"
            );
            if path.starts_with("/api/") {
                assert!(
                    responses.keys().any(|s| s.starts_with('4')),
                    "{method} {path} documents no client error"
                );
            }
            if op.get("requestBody").is_some() {
                for status in ["400", "413", "415", "422"] {
                    assert!(
                        responses.contains_key(status),
                        "{method} {path} lacks {status}"
                    );
                }
            }
            for name in path.split('{').skip(1).filter_map(|s| s.split('}').next()) {
                assert!(
                    op["parameters"].as_array().is_some_and(|ps| ps
                        .iter()
                        .any(|p| p["name"] == name && p["in"] == "path")),
                    "{method} {path} does not declare {name}"
                );
            }
            // It is really routed: whatever the answer, it is not "no such route".
            let url = path
                .split('{')
                .enumerate()
                .map(|(i, s)| {
                    if i == 0 {
                        s.to_owned()
                    } else {
                        format!("{}{}", Uuid::now_v7(), s.split_once('}').unwrap().1)
                    }
                })
                .collect::<String>();
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = api.http.request(m, api.url(&url)).send().await.unwrap();
            let status = res.status().as_u16();
            let body = res.text().await.unwrap();
            assert!(
                status != 405 && !body.contains("no_such_route"),
                "{method} {path} is documented but not routed: {status} {body}"
            );
        }
    }
    assert!(operations >= 40, "only {operations} operations documented");
}

#[tokio::test]
async fn the_docs_page_works_offline() {
    let api = Api::new().await;
    let page = api.http.get(api.url("/docs/")).send().await.unwrap();
    assert_eq!(page.status().as_u16(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("swagger"), "{html}");
    let mut assets = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for part in html.split(attr).skip(1) {
            let url = part.split('"').next().unwrap();
            assert!(
                !url.starts_with("http") && !url.starts_with("//"),
                "the docs page loads {url} from elsewhere"
            );
            assets.push(url.trim_start_matches("./").to_owned());
        }
    }
    assert!(assets.iter().any(|a| a.ends_with(".js")), "{assets:?}");
    for asset in &assets {
        let res = api
            .http
            .get(api.url(&format!("/docs/{asset}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200, "/docs/{asset}");
        let text = res.text().await.unwrap();
        assert!(!text.is_empty(), "/docs/{asset} is empty");
        if asset.contains("initializer") {
            assert!(text.contains("/openapi.json"), "{text}");
            // Otherwise Swagger UI loads a badge from validator.swagger.io on any host but
            // localhost.
            assert!(
                text.replace(' ', "").contains(r#""validatorUrl":"none""#),
                "{text}"
            );
        }
    }
}
