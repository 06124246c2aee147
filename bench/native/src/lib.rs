//! Shared parts of the native peers of the tessera read benchmark: the case
//! list, the line protocol spoken with `bench/run.ts`, and the checksums.
//!
//! Protocol (one JSON document per line, stdin → stdout):
//!
//! 1. setup: `{"stores": {"<store>": "<path>", ...}, "cases": {"<case>": {"reads": [<sel>, ...]}}}`
//!    where a selection holds one `[start, stop]` (or an integer index, which drops the
//!    dimension) per dimension; answered by `{"ready": true, ...}` with what the binary is.
//! 2. `{"op": "run", "reader": "...", "store": "...", "case": "...", "check": bool, "limit": n|null}`
//!    → `{"ms": [one per read], "checksums": [...], "shapes": [...]}` (checksums and shapes
//!    only with `check`; `limit` runs only the first reads of the case).
//! 3. `{"op": "quit"}`.
//!
//! Errors are answered as `{"error": "..."}`; nothing else is written to stdout.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::time::Instant;

use serde::Deserialize;
use serde_json::{json, Value};

/// Must match bench/run.ts and bench/peers_bench.py.
pub const CHECK_MOD: u64 = 251;

/// One dimension of a selection.
#[derive(Clone, Copy, Debug)]
pub struct Dim {
    pub start: u64,
    pub stop: u64,
    /// An integer index: the dimension is dropped from the output shape.
    pub drop: bool,
}

/// A selection: one [`Dim`] per array dimension.
pub type Sel = Vec<Dim>;

/// Output shape of a selection (dropped dimensions left out).
pub fn out_shape(sel: &Sel) -> Vec<u64> {
    sel.iter()
        .filter(|d| !d.drop)
        .map(|d| d.stop - d.start)
        .collect()
}

/// Number of elements a selection reads.
pub fn num_elements(sel: &Sel) -> u64 {
    sel.iter().map(|d| d.stop - d.start).product()
}

fn parse_sel(value: &Value) -> Result<Sel, String> {
    let dims = value
        .as_array()
        .ok_or_else(|| format!("selection {value} is not a list"))?;
    dims.iter()
        .map(|d| {
            if let Some(i) = d.as_u64() {
                return Ok(Dim {
                    start: i,
                    stop: i + 1,
                    drop: true,
                });
            }
            match d.as_array().map(|r| {
                (
                    r.len(),
                    r.first().and_then(Value::as_u64),
                    r.get(1).and_then(Value::as_u64),
                )
            }) {
                Some((2, Some(start), Some(stop))) if start <= stop => Ok(Dim {
                    start,
                    stop,
                    drop: false,
                }),
                _ => Err(format!(
                    "selection entry {d} is neither an index nor [start, stop]"
                )),
            }
        })
        .collect()
}

#[derive(Deserialize)]
struct SetupJson {
    stores: BTreeMap<String, String>,
    cases: BTreeMap<String, CaseJson>,
    #[serde(default)]
    readers: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct CaseJson {
    reads: Vec<Value>,
}

/// What `bench/run.ts` sends first: stores, cases and (optionally) readers.
pub struct Setup {
    pub stores: BTreeMap<String, String>,
    pub cases: BTreeMap<String, Vec<Sel>>,
    pub readers: Option<Vec<String>>,
}

impl Setup {
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: SetupJson = serde_json::from_str(text).map_err(|e| format!("setup: {e}"))?;
        let mut cases = BTreeMap::new();
        for (name, case) in raw.cases {
            let reads = case
                .reads
                .iter()
                .map(parse_sel)
                .collect::<Result<Vec<_>, _>>()?;
            cases.insert(name, reads);
        }
        Ok(Self {
            stores: raw.stores,
            cases,
            readers: raw.readers,
        })
    }
}

/// `[sum, sum of value × (flat C-order index % 251 + 1)]` of one read's output.
pub fn checksum(data: &[u16]) -> [u64; 2] {
    let mut s1 = 0u64;
    let mut s2 = 0u64;
    for block in data.chunks(CHECK_MOD as usize) {
        let mut b1 = 0u64;
        let mut b2 = 0u64;
        for (w, &v) in block.iter().enumerate() {
            b1 += u64::from(v);
            b2 += u64::from(v) * (w as u64 + 1);
        }
        s1 += b1;
        s2 += b2;
    }
    [s1, s2]
}

/// What one read gives back in a check pass.
pub enum Check {
    /// Shape and both checksums of the output.
    Full { shape: Vec<u64>, sums: [u64; 2] },
    /// Only the sum of the elements (the limit's whole-volume decode).
    Sum(u64),
    /// Nothing comparable (e.g. a crop's decode limit, memcpy).
    None,
}

/// A reader the serve loop can drive.
pub trait Reader {
    /// Runs one read of `store`; returns what a check needs when `check` is set.
    fn read(
        &mut self,
        store: &str,
        case: &str,
        index: usize,
        sel: &Sel,
        check: bool,
    ) -> Result<Check, String>;
}

/// Runs `limit` reads (all if `None`) of a case, each timed on its own.
pub fn run_case(
    reader: &mut dyn Reader,
    setup: &Setup,
    store: &str,
    case: &str,
    check: bool,
    limit: Option<usize>,
) -> Result<Value, String> {
    let reads = setup
        .cases
        .get(case)
        .ok_or_else(|| format!("unknown case {case:?}"))?;
    if !setup.stores.contains_key(store) {
        return Err(format!("unknown store {store:?}"));
    }
    let n = limit.unwrap_or(reads.len()).min(reads.len());
    let mut ms = Vec::with_capacity(n);
    let mut checksums = Vec::new();
    let mut shapes = Vec::new();
    for (i, sel) in reads[..n].iter().enumerate() {
        let started = Instant::now();
        let result = reader.read(store, case, i, sel, check)?;
        ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if check {
            match result {
                Check::Full { shape, sums } => {
                    checksums.push(json!(sums));
                    shapes.push(json!(shape));
                }
                Check::Sum(s) => {
                    checksums.push(json!([s, null]));
                    shapes.push(Value::Null);
                }
                Check::None => {
                    checksums.push(Value::Null);
                    shapes.push(Value::Null);
                }
            }
        }
    }
    Ok(if check {
        json!({"ms": ms, "checksums": checksums, "shapes": shapes})
    } else {
        json!({"ms": ms})
    })
}

fn emit(out: &mut impl Write, value: &Value) {
    // stdout closed: bench/run.ts is gone, nothing left to do.
    if writeln!(out, "{value}").and_then(|()| out.flush()).is_err() {
        std::process::exit(1);
    }
}

/// Serves the line protocol: `open` builds the readers from the setup line and
/// returns them (by name) with the `ready` reply's extra fields.
pub fn serve<F>(open: F) -> i32
where
    F: FnOnce(&Setup) -> Result<(BTreeMap<String, Box<dyn Reader>>, Value), String>,
{
    let stdin = std::io::stdin();
    let mut out = std::io::stdout().lock();
    let mut lines = stdin.lock().lines();
    let Some(Ok(first)) = lines.next() else {
        return 1;
    };
    let opened = Setup::parse(&first).and_then(|setup| open(&setup).map(|r| (setup, r)));
    let (setup, (mut readers, info)) = match opened {
        Ok(v) => v,
        Err(e) => {
            emit(&mut out, &json!({"error": e}));
            return 1;
        }
    };
    let mut ready = json!({"ready": true});
    if let (Some(r), Value::Object(extra)) = (ready.as_object_mut(), info) {
        r.extend(extra);
    }
    emit(&mut out, &ready);
    for line in lines {
        let Ok(line) = line else { break };
        if line.trim().is_empty() {
            continue;
        }
        let reply = (|| {
            let cmd: Value = serde_json::from_str(&line).map_err(|e| format!("command: {e}"))?;
            let op = cmd["op"].as_str().unwrap_or("");
            if op == "quit" {
                return Ok(None);
            }
            if op != "run" {
                return Err(format!("unknown op {op:?}"));
            }
            let name = cmd["reader"].as_str().unwrap_or("");
            let reader = readers
                .get_mut(name)
                .ok_or_else(|| format!("unknown reader {name:?}"))?;
            let store = cmd["store"].as_str().unwrap_or("");
            let case = cmd["case"].as_str().unwrap_or("");
            let check = cmd["check"].as_bool().unwrap_or(false);
            let limit = cmd["limit"].as_u64().map(|n| n as usize);
            run_case(reader.as_mut(), &setup, store, case, check, limit)
                .map(Some)
                .map_err(|e| format!("{name} on {store}/{case}: {e}"))
        })();
        match reply {
            Ok(None) => break,
            Ok(Some(v)) => emit(&mut out, &v),
            Err(e) => emit(&mut out, &json!({"error": e})),
        }
    }
    0
}

/// Standalone mode: `run CASES.json [--rounds N]` — a check pass, then
/// `rounds` rounds over every store, case and reader; one JSON document.
pub fn standalone<F>(args: &[String], open: F) -> i32
where
    F: FnOnce(&Setup) -> Result<(BTreeMap<String, Box<dyn Reader>>, Value), String>,
{
    let mut path = None;
    let mut rounds = 3usize;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--rounds" {
            rounds = it.next().and_then(|n| n.parse().ok()).unwrap_or(rounds);
        } else {
            path = Some(a.clone());
        }
    }
    let Some(path) = path else {
        eprintln!("usage: run CASES.json [--rounds N]");
        return 2;
    };
    let result = (|| {
        let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
        let setup = Setup::parse(&text)?;
        let (mut readers, info) = open(&setup)?;
        let mut out = serde_json::Map::new();
        out.insert("info".into(), info);
        let mut results = serde_json::Map::new();
        for (name, reader) in readers.iter_mut() {
            let mut per_store = serde_json::Map::new();
            for store in setup.stores.keys() {
                let mut per_case = serde_json::Map::new();
                for case in setup.cases.keys() {
                    let check = run_case(reader.as_mut(), &setup, store, case, true, None)?;
                    let mut timed = Vec::new();
                    for _ in 0..rounds {
                        timed.push(
                            run_case(reader.as_mut(), &setup, store, case, false, None)?["ms"]
                                .clone(),
                        );
                    }
                    per_case.insert(case.clone(), json!({"check": check, "rounds": timed}));
                }
                per_store.insert(store.clone(), Value::Object(per_case));
            }
            results.insert(name.clone(), Value::Object(per_store));
        }
        out.insert("results".into(), Value::Object(results));
        Ok::<_, String>(Value::Object(out))
    })();
    match result {
        Ok(v) => {
            println!("{v}");
            0
        }
        Err(e) => {
            eprintln!("{e}");
            1
        }
    }
}

/// Entry point shared by the binaries: `serve` or `run CASES.json`.
pub fn main_with<F>(open: F) -> i32
where
    F: FnOnce(&Setup) -> Result<(BTreeMap<String, Box<dyn Reader>>, Value), String>,
{
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("serve") => serve(open),
        Some("run") => standalone(&args[1..], open),
        _ => {
            eprintln!("usage: serve | run CASES.json [--rounds N]  (see bench/README.md)");
            2
        }
    }
}
