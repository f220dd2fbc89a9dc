//! The catalog directives (`tfgate_model`, `tfgate_model_label`) as nginx.conf may spell them,
//! then requests resolved against whatever catalog was accepted. Input: lines of
//! whitespace-separated arguments; a line starting with `label` declares a label, `req` a
//! request path, anything else a model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ngx_http_tfgate_module::catalog::{Catalog, LabelDecl, ModelDecl};
use tfgate_common::{parse_rest_path, VersionSelector};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut catalog = Catalog::default();
    let mut requests = Vec::new();
    for line in text.lines() {
        let args: Vec<&str> = line.split_whitespace().collect();
        match args.split_first() {
            Some((&"label", rest)) => {
                if let Ok(decl) = LabelDecl::parse(rest) {
                    let _ = catalog.add_label(decl);
                }
            }
            Some((&"req", rest)) => requests.extend(rest.iter().map(|r| r.to_string())),
            Some(_) => {
                if let Ok(decl) = ModelDecl::parse(&args) {
                    let _ = catalog.add_model(decl);
                }
            }
            None => {}
        }
    }
    if catalog.validate().is_err() {
        return;
    }
    for (i, request) in requests.iter().enumerate() {
        let Ok(path) = parse_rest_path(request.as_bytes()) else { continue };
        if catalog.check(&path).is_err() {
            continue;
        }
        let resolved = catalog.resolve(path, &format!("subject-{i}"));
        // A declared model never resolves to a version it does not expose, nor leaves a model
        // declared with versions= to a label TF Serving would resolve to any version.
        match (catalog.model(&resolved.path.model), &resolved.path.selector) {
            (Some(model), VersionSelector::Number(v)) => {
                assert!(model.declares(*v), "{request} resolved to undeclared version {v}");
            }
            (Some(model), VersionSelector::Label(l)) => {
                assert!(model.versions.is_empty(), "{request} left label {l} to TF Serving past versions=");
            }
            _ => {}
        }
    }
});
