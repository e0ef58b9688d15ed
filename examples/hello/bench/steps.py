#!/usr/bin/env python3
"""Attribute `perf script` call stacks of a pym service to the steps of its
request path, and print each step's share of the server's CPU and its cost
in microseconds per request.

Usage: perf script -F ip,sym | steps.py <server CPU µs per request>

A sample belongs to the innermost step any of its frames names (a malloc
inside the access line counts for the access line); samples no step names
are "other". Steps are matched by function names, so the control's own UUID
or Redis timeout lands in "request id" or "limits". Used by bench.sh with
PROFILE=1.
"""
import collections
import re
import sys

# (step, frame pattern), outer steps first; the innermost match wins.
STEPS = [
    ("hyper: read + parse the request", r"Dispatcher<.*>::poll_read$|h1::role::Server as .*Http1Transaction>::parse"),
    ("hyper: encode + write the response", r"Dispatcher<.*>::poll_flush$|h1::role::Server as .*Http1Transaction>::encode"),
    ("routing and boxing (axum Router, tower layers)", r"axum::routing|BoxCloneSyncService|AroundService|tower::util::oneshot|MapIntoResponse"),
    ("request id (tower-http layers, UUIDv7)", r"tower_http::request_id|pym_http::request_id|uuid::"),
    ("request layer: trace, context, span", r"pym_http::server::request::|continue_trace|tracing::span|Instrumented"),
    ("limits: in-flight permit, deadline", r"pym_http::server::limited|batch_semaphore|tokio::time::timeout"),
    ("panic catcher + error normaliser", r"catch_panic|CatchUnwind|pym_http::error::normalize"),
    ("operation: auth, params, body, context", r"pym_http::server::operation|run_operation|check_params|read_body|pym_http::validate"),
    ("JWT verify (jsonwebtoken)", r"jsonwebtoken::"),
    ("handler + response body", r"HandlerService|IntoServiceFuture|pym_http::builtins::|^hello::"),
    ("task spawn (envelope, seal, XADD)", r"pym_broker::|spawn::\{\{closure\}\}|redis::"),
    ("metrics", r"HttpMetrics::observe|prometheus_client"),
    ("access line (tracing event, JSON, buffer)", r"pym_http::server::done|tracing_core::event::Event::dispatch|pym_process::"),
    ("task-local context scope", r"pym_core::context|task_local"),
    ("kernel: syscalls, wakeups", r"^entry_SYSCALL|do_syscall_64|asm_sysvec|irqentry|^\[k\]"),
]
COMPILED = [(name, re.compile(p)) for name, p in STEPS]


def step_of(stack):
    """stack: frames, leaf first."""
    for frame in stack:
        for name, pat in reversed(COMPILED):
            if pat.search(frame):
                return name
    return "other (tokio scheduler, allocator, ...)"


def stacks(lines):
    stack = []
    for line in lines:
        line = line.rstrip("\n")
        if not line.strip():
            if stack:
                yield stack
            stack = []
        elif line[0] in "\t ":
            frame = re.sub(r"^[0-9a-f]+ ", "", line.strip())
            stack.append(re.sub(r" \(.*\)$", "", frame))
        elif stack:
            yield stack
            stack = []
    if stack:
        yield stack


def main():
    us_per_request = float(sys.argv[1])
    counts = collections.Counter(step_of(s) for s in stacks(sys.stdin))
    total = sum(counts.values()) or 1
    print("| step | share of server CPU | µs per request |")
    print("|---|---|---|")
    order = [n for n, _ in STEPS] + ["other (tokio scheduler, allocator, ...)"]
    for name in order:
        if counts[name]:
            share = counts[name] / total
            print(f"| {name} | {share:.1%} | {share * us_per_request:.2f} |")
    print(f"| **total** ({total} samples) | 100% | {us_per_request:.2f} |")


if __name__ == "__main__":
    main()
