//! One libFuzzer binary for every target of `failup-fuzz`: `FAILUP_FUZZ_TARGET` names the
//! target by its slug (`failup_fuzz::Target::slug`). Built and run by `guided.sh`.

#![no_main]

use std::sync::OnceLock;

fn target() -> &'static failup_fuzz::Target {
    static TARGET: OnceLock<failup_fuzz::Target> = OnceLock::new();
    TARGET.get_or_init(|| {
        let want = std::env::var("FAILUP_FUZZ_TARGET").unwrap_or_default();
        let all = failup_fuzz::targets();
        let names: Vec<String> = all.iter().map(failup_fuzz::Target::slug).collect();
        match all.into_iter().find(|t| t.slug() == want) {
            Some(t) => t,
            None => {
                eprintln!("set FAILUP_FUZZ_TARGET to one of: {}", names.join(" "));
                std::process::exit(2);
            }
        }
    })
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (target().run)(data);
});
