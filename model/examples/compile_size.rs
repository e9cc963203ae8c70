//! The model's compile time and heap size for a catalog document (the `catalog` member of
//! the extension's loader query, `src/catalog/load.rs`), without PostgreSQL:
//!     cargo run --release -p crm_model --example compile_size -- catalog.json
//! Heap bytes are counted by a wrapping allocator (requested sizes, before malloc's own
//! overhead); docs/benchmarks.md quotes it for the large organisation.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Instant;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size(), Relaxed);
        System.alloc(l)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size(), Relaxed);
        System.dealloc(p, l)
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

fn main() {
    let path = std::env::args().nth(1).expect("usage: compile_size CATALOG.json");
    let text = std::fs::read_to_string(&path).expect("cannot read the catalog document");
    let base = LIVE.load(Relaxed);
    let start = Instant::now();
    let catalog: crm_model::Catalog = serde_json::from_str(&text).expect("not a catalog document");
    let parsed = start.elapsed();
    let model = crm_model::Model::compile(catalog).expect("the catalog does not compile");
    let compiled = start.elapsed() - parsed;
    println!(
        "{} users: parse {:.2} ms, compile {:.2} ms, model {} kB on the heap",
        model.users().count(),
        parsed.as_secs_f64() * 1e3,
        compiled.as_secs_f64() * 1e3,
        (LIVE.load(Relaxed) - base) / 1024
    );
    // The shared form (`Model::to_bytes`): its size, and what reading it back costs.
    let bytes = model.to_bytes();
    let start = Instant::now();
    let back = crm_model::Model::from_bytes(&bytes).expect("reads back");
    println!("as bytes: {} kB, read back in {:.2} ms", bytes.len() / 1024, start.elapsed().as_secs_f64() * 1e3);
    drop(back);
}
