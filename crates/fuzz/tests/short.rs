//! A short fuzzing campaign on every test run: each decoder that takes outside bytes gets
//! random and mutated inputs, none may panic or grow the heap past the bound.

use peak_alloc::PeakAlloc;

#[global_allocator]
static HEAP: PeakAlloc = PeakAlloc;

#[test]
fn no_decoder_panics_or_runs_away_on_hostile_bytes() {
    let peak = || {
        let grew = HEAP.peak_usage().saturating_sub(HEAP.current_usage());
        HEAP.reset_peak_usage();
        grew
    };
    for f in failup_fuzz::campaign(1_500, 7, 64 * 1024 * 1024, &peak) {
        assert!(
            f.panics.is_empty() && f.runaway.is_empty(),
            "{}: {} panics, {} runaway allocations, first: {:?}",
            f.target,
            f.panics.len(),
            f.runaway.len(),
            f.panics.first().or(f.runaway.first())
        );
    }
}
