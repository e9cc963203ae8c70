//! Modules are data (DESIGN §9, issue 25): no module's name is special in the code of the
//! engine or of the extension. The standard modules, their relations and their roles are rows
//! crm_access ships (sql/catalog.sql); the code asks the catalog. One file is the exception:
//! src/catalog/compat.rs keeps them as 0.3.0 had them in code, for a library serving an older
//! schema while `ALTER EXTENSION crm_access UPDATE` runs the older releases' scripts.

use std::path::Path;

const STANDARD: [&str; 13] = [
    "Leads", "Accounts", "Contacts", "Opportunities", "Tickets", "Quotes", "SalesOrders", "PurchaseOrders", "Invoices", "Products",
    "Activities", "Messages", "Tags",
];

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_module_name_is_written_in_code() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    sources(&root.join("../src"), &mut files);
    assert!(files.len() > 20, "found only {} source files", files.len());
    let mut found = Vec::new();
    for file in files.iter().filter(|f| !f.ends_with("src/catalog/compat.rs")) {
        let text = std::fs::read_to_string(file).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or_default();
            for name in STANDARD {
                if code.contains(&format!("\"{name}\"")) {
                    found.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
                }
            }
        }
    }
    assert!(found.is_empty(), "module names written in code:\n{}", found.join("\n"));
}
