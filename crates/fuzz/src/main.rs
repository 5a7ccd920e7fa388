//! `failup-fuzz [INPUTS]`: every decoder that takes outside bytes, fed random and mutated
//! inputs; prints what each saw and exits non-zero on a panic or a runaway allocation, after
//! writing the input to `fuzz-failures/` to replay.

use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

/// Heap growth for one input past which it counts as runaway.
const BOUND: usize = 64 * 1024 * 1024;

fn main() {
    // `failup-fuzz --seeds TARGET DIR`: writes a target's seeds as files, the starting corpus
    // of the coverage-guided fuzzer (crates/fuzz/guided.sh).
    let args: Vec<String> = std::env::args().collect();
    // `failup-fuzz --list`: the targets by slug, as guided.sh and `--seeds` take them.
    if args.get(1).map(String::as_str) == Some("--list") {
        for t in failup_fuzz::targets() {
            println!("{}", t.slug());
        }
        return;
    }
    if let [_, flag, target, dir] = args.as_slice() {
        if flag == "--seeds" {
            let Some(t) = failup_fuzz::targets()
                .into_iter()
                .find(|t| t.slug() == *target)
            else {
                eprintln!("failup-fuzz: no target {target:?}");
                std::process::exit(2);
            };
            for (i, seed) in (t.seeds)().iter().enumerate() {
                if let Err(e) = std::fs::write(format!("{dir}/seed-{i}"), seed) {
                    eprintln!("failup-fuzz: cannot write {dir}/seed-{i}: {e}");
                    std::process::exit(1);
                }
            }
            return;
        }
    }
    // A caught panic is counted, not printed.
    std::panic::set_hook(Box::new(|_| {}));
    let inputs: usize = match args.get(1) {
        None => 100_000,
        Some(n) => match n.parse() {
            Ok(n) => n,
            Err(_) => {
                eprintln!(
                    "failup-fuzz: usage: failup-fuzz [INPUTS_PER_TARGET] | failup-fuzz --list | \
                     failup-fuzz --seeds TARGET DIR"
                );
                std::process::exit(2);
            }
        },
    };
    let started = std::time::Instant::now();
    let peak = || {
        let grew = HEAP.peak_usage().saturating_sub(HEAP.current_usage());
        HEAP.reset_peak_usage();
        grew
    };
    let findings = failup_fuzz::campaign(inputs, 1, BOUND, &peak);
    println!("| target | inputs | panics | runaway allocations | largest heap growth |");
    println!("|---|---|---|---|---|");
    let mut bad = 0;
    for f in &findings {
        println!(
            "| {} | {} | {} | {} | {:.1} MiB |",
            f.target,
            f.inputs,
            f.panics.len(),
            f.runaway.len(),
            f.peak as f64 / (1024.0 * 1024.0)
        );
        for (kind, list) in [("panic", &f.panics), ("runaway", &f.runaway)] {
            for (i, input) in list.iter().enumerate().take(5) {
                let _ = std::fs::create_dir_all("fuzz-failures");
                let name = format!(
                    "fuzz-failures/{}-{kind}-{i}.bin",
                    f.target.replace(' ', "-")
                );
                let _ = std::fs::write(&name, input);
                bad += 1;
            }
        }
    }
    println!(
        "{} inputs in {:.1} s",
        inputs * findings.len(),
        started.elapsed().as_secs_f64()
    );
    if bad > 0 {
        eprintln!("failup-fuzz: failing inputs written to fuzz-failures/");
        std::process::exit(1);
    }
}
