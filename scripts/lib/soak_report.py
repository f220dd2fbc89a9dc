#!/usr/bin/env python3
"""The soak's figures and goals (scripts/soak.sh): reads samples.csv, phases.jsonl and
events.csv from OUT, writes phases.csv, summary.json and summary.md there, prints the summary,
and exits 1 when a goal is missed. Python's standard library only.

    python3 scripts/lib/soak_report.py OUT --minutes M --phase-s P [--machine TEXT]

Definitions (the goals of issue 22):
- warm-up: the first sixth of the run (at least two phases), rounded up to a phase boundary;
  the first and the last window (a fifteenth of the run, at least two phases) are compared.
- lost: a request that got neither a correct answer nor a documented refusal, outside the two
  documented windows:
  - the phase in which a backend is killed: its calls in flight on that replica get 503 /
    UNAVAILABLE (not retried: they may have run; docs/batcher.md, [backend] grpc);
  - the phase of an nginx reload: the old worker closes its idle client connections (HTTP/1.1
    keep-alive; HTTP/2 with GOAWAY), and a request the client sends on one at that instant
    fails at the client without nginx having taken it (the connection closed or reset before
    any answer: hyper's "connection closed before message completed" or "connection error"; a
    gRPC stream past GOAWAY's last stream: tonic's "Cancelled", or an h2 error).
    Such a request was never processed and is safe to send again: curl does for a reused
    connection, gRPC's official clients do for a stream refused by GOAWAY (transparent retry);
    tfgate-load (hyper, tonic) does not, so it counts them. Allowed: at most
    RELOAD_WINDOW_MAX such failures per protocol in the phase, all of these kinds (the first
    error of the run is checked); anything else is lost.
  Everything else that is not a correct answer is lost: an error, a caller that gave up (10 s),
  a refusal in any other phase, a probe answered wrongly.
- flat: the median of the last window minus the median of the first, after warm-up, within
  OTHER_FD_SLACK for the fds other than Unix sockets (files, TCP to the replicas and Redis,
  pipes: nothing there follows the load), FD_SLACK for all fds (nginx's connections come and go
  with the load and its reloads: a leak is a trend, not a spread) and THREAD_SLACK threads; and
  never an fd on a deleted file (a log not reopened).
- RSS growth: the daemon's median RSS over the last window against the first, after warm-up,
  <= 5%; judged on runs of 10 minutes or more only.
"""

import argparse
import csv
import json
import os
import statistics
import sys

FD_SLACK = 16
OTHER_FD_SLACK = 2
THREAD_SLACK = 2
RSS_GOAL_PCT = 5.0
RSS_MIN_MINUTES = 10
KILL = "backend_kill"
RELOAD = "nginx_reload"
RELOAD_WINDOW_MAX = 3
# tfgate-load's first error for a request that an old nginx worker never took.
# hyper: the connection closed (IncompleteMessage) or was reset (an I/O error: "connection
# error") before any answer; tonic: a stream past GOAWAY's last stream id, or an h2 error.
UNSENT = ("connection closed before message completed", "connection error", "Cancelled: operation was canceled",
          "h2 protocol error")


def load(out):
    with open(os.path.join(out, "samples.csv")) as f:
        samples = [
            {k: (v if k == "probe" else float(v)) for k, v in row.items()} for row in csv.DictReader(f)
        ]
    with open(os.path.join(out, "phases.jsonl")) as f:
        phases = [json.loads(line) for line in f if line.strip()]
    with open(os.path.join(out, "events.csv")) as f:
        events = list(csv.DictReader(f))
    for s in samples:
        s["daemon_other_fds"] = s["daemon_fds"] - s["daemon_unix_fds"]
    # The daemon's own counters at the end (soak.sh saves them): name{labels} value.
    counters = {}
    path = os.path.join(out, "final-metrics.txt")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                name, _, value = line.strip().rpartition(" ")
                base = name.split("{")[0]
                counters[base] = counters.get(base, 0) + float(value)
    return samples, phases, events, counters


def windows(minutes, phase_s):
    total = minutes * 60
    warmup = max(2 * phase_s, total / 6)
    warmup = phase_s * -(-warmup // phase_s)  # up to a phase boundary
    window = max(2 * phase_s, total / 15)
    return total, warmup, window


def series_stats(samples, key, warmup, window, end):
    post = [s[key] for s in samples if s["t"] >= warmup]
    first = [s[key] for s in samples if warmup <= s["t"] < warmup + window]
    last = [s[key] for s in samples if s["t"] >= end - window]
    if not post or not first or not last:
        return None
    return {
        "min": min(post),
        "max": max(post),
        "first_median": statistics.median(first),
        "last_median": statistics.median(last),
        "drift": statistics.median(last) - statistics.median(first),
    }


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--minutes", type=int, required=True)
    parser.add_argument("--phase-s", type=float, required=True)
    parser.add_argument("--machine", default="")
    parser.add_argument("--kinds", default="", help="the kinds of events the run cycles through")
    args = parser.parse_args()
    samples, phases, events, counters = load(args.out)
    total, warmup, window = windows(args.minutes, args.phase_s)
    end = max((p["end"] for p in phases), default=total)

    # Per phase and protocol: what was sent, answered, refused, lost.
    rows = []
    for p in phases:
        l = p["load"]
        if l.get("failed_to_run"):
            l = {"requests": 0, "errors": 1, "refused": 0, "gave_up": 0, "p50_us": 0, "p99_us": 0, "max_us": 0}
        refused = l["refused"]
        in_window = p["event"] == KILL
        unsent = 0
        if (p["event"] == RELOAD and 0 < l["errors"] <= RELOAD_WINDOW_MAX
                and any(u in p.get("first_error", "") for u in UNSENT)):
            unsent = l["errors"]
        lost = (l["errors"] - unsent + l["gave_up"] + (0 if in_window else refused)
                + (1 if l.get("unanswered") else 0))
        rows.append({
            "phase": p["phase"], "start": p["start"], "end": p["end"], "event": p["event"], "proto": p["proto"],
            "sent": l["requests"] + l["errors"] + refused + l["gave_up"], "answered": l["requests"],
            "refused": refused, "errors": l["errors"], "unsent_at_reload": unsent, "gave_up": l["gave_up"], "lost": lost,
            "p50_us": l["p50_us"], "p99_us": l["p99_us"], "max_us": l["max_us"], "first_error": p.get("first_error", ""),
        })
    # The probes: one checked REST request per sample, charged to the phase it fell in.
    phase_of = lambda t: next((p for p in phases if p["start"] <= t < p["end"]), None)
    probes = {"sent": 0, "correct": 0, "refused_in_window": 0, "lost": 0, "lost_detail": []}
    for s in samples:
        probes["sent"] += 1
        if s["probe"] == "200":
            probes["correct"] += 1
            continue
        p = phase_of(s["t"])
        if s["probe"] in ("503", "429") and p is not None and p["event"] == KILL:
            probes["refused_in_window"] += 1
        else:
            probes["lost"] += 1
            probes["lost_detail"].append(f"t={s['t']:.0f}s: {s['probe']}")

    with open(os.path.join(args.out, "phases.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0].keys()) if rows else ["phase"])
        writer.writeheader()
        writer.writerows(rows)

    rss = series_stats(samples, "daemon_rss_kb", warmup, window, end)
    fds = series_stats(samples, "daemon_fds", warmup, window, end)
    other_fds = series_stats(samples, "daemon_other_fds", warmup, window, end)
    threads = series_stats(samples, "daemon_threads", warmup, window, end)
    nginx = series_stats(samples, "nginx_rss_kb", warmup, window, end)
    deleted = max((s["daemon_deleted_fds"] for s in samples), default=0)
    rss_growth = 100 * (rss["last_median"] / rss["first_median"] - 1) if rss else None
    nginx_growth = 100 * (nginx["last_median"] / nginx["first_median"] - 1) if nginx and nginx["first_median"] else None

    # nginx's workers are replaced at each reload: their growth is read per worker, from a minute
    # after it started (alone) to its last minute. Reported, not a goal.
    nginx_lives = []
    starts = [0.0] + [float(e["t"]) for e in events if e["kind"] == RELOAD] + [end]
    for a, b in zip(starts, starts[1:]):
        alone = [x for x in samples if a <= x["t"] < b and x["nginx_workers"] == 1]
        first = [x["nginx_rss_kb"] for x in alone if a + 60 <= x["t"] < a + 120]
        last = [x["nginx_rss_kb"] for x in alone if x["t"] >= b - 60]
        if b - a >= 240 and first and last:
            nginx_lives.append({"from_s": a, "to_s": b, "first_kb": statistics.median(first),
                                "last_kb": statistics.median(last)})

    lost_outside = sum(r["lost"] for r in rows) + probes["lost"]
    sent = sum(r["sent"] for r in rows) + probes["sent"]
    answered = sum(r["answered"] for r in rows) + probes["correct"]
    refused_in_windows = sum(r["refused"] for r in rows if r["event"] == KILL) + probes["refused_in_window"]
    unsent_at_reload = sum(r["unsent_at_reload"] for r in rows)
    failed_events = [e for e in events if e["ok"] != "1"]
    kinds = sorted({e["kind"] for e in events})

    goals = {
        "lost requests 0 outside the documented windows": lost_outside == 0,
        f"fds other than Unix sockets flat (last - first window median within {OTHER_FD_SLACK})":
            other_fds is not None and abs(other_fds["drift"]) <= OTHER_FD_SLACK,
        f"all fds flat (within {FD_SLACK})": fds is not None and abs(fds["drift"]) <= FD_SLACK,
        f"threads flat (within {THREAD_SLACK})": threads is not None and abs(threads["drift"]) <= THREAD_SLACK,
        "no fd on a deleted file": deleted == 0,
        "every event took effect": not failed_events and len(events) > 0,
    }
    if args.minutes >= RSS_MIN_MINUTES:
        goals[f"RSS growth after warm-up <= {RSS_GOAL_PCT:g}%"] = rss_growth is not None and rss_growth <= RSS_GOAL_PCT
    wanted = set(args.kinds.split())
    if wanted:
        goals["each kind of event fired"] = wanted <= set(kinds)

    # What each event cost: its phase's refusals and errors, and its p99 against the quiet phases'.
    quiet = {proto: [r["p99_us"] for r in rows if r["proto"] == proto and not r["event"] and r["start"] >= warmup]
             for proto in ("rest", "grpc")}
    quiet_p99 = {proto: statistics.median(v) if v else 0 for proto, v in quiet.items()}
    event_costs = []
    for e in events:
        ph = int(e["phase"])
        r = {x["proto"]: x for x in rows if x["phase"] == ph}
        event_costs.append({
            "t": float(e["t"]), "phase": ph, "kind": e["kind"], "ok": e["ok"] == "1", "seconds": float(e["seconds"]),
            "detail": e["detail"],
            "refused": sum(x["refused"] for x in r.values()), "lost": sum(x["lost"] for x in r.values()),
            "unsent_at_reload": sum(x["unsent_at_reload"] for x in r.values()),
            "p99_us": {proto: x["p99_us"] for proto, x in r.items()},
        })

    summary = {
        "minutes": args.minutes, "phase_s": args.phase_s, "warmup_s": warmup, "window_s": window,
        "machine": args.machine, "sent": sent, "answered": answered,
        "refused_in_documented_windows": refused_in_windows, "unsent_at_nginx_reload": unsent_at_reload,
        "lost_outside_windows": lost_outside,
        "probes": probes, "daemon_rss_kb": rss, "daemon_rss_growth_pct": rss_growth, "daemon_fds": fds,
        "daemon_other_fds": other_fds, "daemon_threads": threads, "daemon_counters": counters, "daemon_deleted_fds_max": deleted, "nginx_workers_rss_kb": nginx,
        "nginx_workers_rss_growth_pct": nginx_growth, "nginx_worker_lives": nginx_lives, "quiet_p99_us": quiet_p99,
        "events": event_costs, "goals": goals, "met": all(goals.values()),
    }
    with open(os.path.join(args.out, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1)
    md = markdown(summary, rows)
    with open(os.path.join(args.out, "summary.md"), "w") as f:
        f.write(md)
    print(md)
    for r in rows:
        if r["lost"]:
            print(f"lost: phase {r['phase']} {r['proto']} ({r['event'] or 'no event'}): {r['lost']}; first error: {r['first_error']}",
                  file=sys.stderr)
    for d in probes["lost_detail"][:10]:
        print(f"lost probe: {d}", file=sys.stderr)
    for e in failed_events:
        print(f"event failed its check: phase {e['phase']} {e['kind']} {e['detail']}", file=sys.stderr)
    return 0 if summary["met"] else 1


def mb(kb):
    return f"{kb / 1024:.1f}"


def markdown(s, rows):
    out = []
    w = out.append
    rss, fds, th, ng = s["daemon_rss_kb"], s["daemon_fds"], s["daemon_threads"], s["nginx_workers_rss_kb"]
    w(f"Soak of {s['minutes']} min ({s['machine']}): warm-up {s['warmup_s']:.0f} s; first and last windows "
      f"of {s['window_s']:.0f} s after it compared (medians).")
    w("")
    w("| measure | value | goal | met |")
    w("| --- | --- | --- | --- |")
    growth = s["daemon_rss_growth_pct"]
    rss_goal = next((v for k, v in s["goals"].items() if k.startswith("RSS")), None)
    if rss:
        w(f"| daemon RSS, MB: first window / last window (min-max after warm-up) | {mb(rss['first_median'])} / "
          f"{mb(rss['last_median'])} ({mb(rss['min'])}-{mb(rss['max'])}) | growth <= {RSS_GOAL_PCT:g}% | "
          f"{growth:+.1f}%: {'yes' if rss_goal else 'no' if rss_goal is not None else f'not judged under {RSS_MIN_MINUTES} min'} |")
    for key, label, slack, goal in (("daemon_fds", "daemon open fds", FD_SLACK, "all fds"),
                                    ("daemon_other_fds", "of them not Unix sockets (files, TCP, pipes)", OTHER_FD_SLACK, "fds other")):
        f = s[key]
        if not f:
            continue
        ok = s["goals"][next(k for k in s["goals"] if k.startswith(goal))]
        w(f"| {label}: min / max after warm-up; first / last window | {f['min']:.0f} / {f['max']:.0f}; "
          f"{f['first_median']:.0f} / {f['last_median']:.0f} | drift within {slack} | {'yes' if ok else 'no'} ({f['drift']:+.0f}) |")
    if th:
        ok = s["goals"][next(k for k in s["goals"] if k.startswith("threads"))]
        w(f"| daemon threads: min / max after warm-up; first / last window | {th['min']:.0f} / {th['max']:.0f}; "
          f"{th['first_median']:.0f} / {th['last_median']:.0f} | drift within {THREAD_SLACK} | {'yes' if ok else 'no'} ({th['drift']:+.0f}) |")
    w(f"| fds on deleted files (logs not reopened), most seen | {s['daemon_deleted_fds_max']:.0f} | 0 | "
      f"{'yes' if s['daemon_deleted_fds_max'] == 0 else 'no'} |")
    if ng:
        ng_growth = s["nginx_workers_rss_growth_pct"]
        w(f"| nginx workers' RSS, MB: first / last window (min-max) | {mb(ng['first_median'])} / {mb(ng['last_median'])} "
          f"({mb(ng['min'])}-{mb(ng['max'])}) | reported | {ng_growth:+.1f}% |" if ng_growth is not None else "")
    for life in s["nginx_worker_lives"]:
        w(f"| an nginx worker from {life['from_s'] / 60:.0f} to {life['to_s'] / 60:.0f} min: RSS a minute after its start / "
          f"in its last minute, MB | {mb(life['first_kb'])} / {mb(life['last_kb'])} | reported | "
          f"{100 * (life['last_kb'] / life['first_kb'] - 1):+.1f}% |")
    w(f"| requests sent (REST + gRPC + probes) / answered (2xx; the probes' values checked) | {s['sent']} / {s['answered']} | | |")
    w(f"| refused in the documented windows (backend killed: calls in flight on it) | {s['refused_in_documented_windows']} | documented | |")
    w(f"| failed at the client in the documented windows (nginx reload: sent as the old worker closed the connection, never taken) "
      f"| {s['unsent_at_nginx_reload']} | documented, at most {RELOAD_WINDOW_MAX} per protocol and reload | |")
    w(f"| lost outside the documented windows | {s['lost_outside_windows']} | 0 | "
      f"{'yes' if s['lost_outside_windows'] == 0 else 'no'} |")
    c = s["daemon_counters"]
    if c:
        w(f"| daemon counters: audit records written / dropped; prediction log records / dropped | "
          f"{c.get('tfgate_audit_records_total', 0):.0f} / {c.get('tfgate_audit_dropped_total', 0):.0f}; "
          f"{c.get('tfgate_prediction_log_records_total', 0):.0f} / {c.get('tfgate_prediction_log_dropped_total', 0):.0f} | reported | |")
        w(f"| daemon counters: calls sent on to another replica; admissions Redis could not count (admitted, "
          f"`on_store_failure = \"allow\"`) | {c.get('tfgate_backend_retries_total', 0):.0f}; "
          f"{c.get('tfgate_quota_store_errors_total', 0):.0f} | reported | |")
    ok_events = sum(1 for e in s["events"] if e["ok"])
    w(f"| events that took effect (checked) | {ok_events} of {len(s['events'])} | all | "
      f"{'yes' if ok_events == len(s['events']) and s['events'] else 'no'} |")
    w("")
    w(f"Quiet phases after warm-up: p99 REST {s['quiet_p99_us']['rest'] / 1000:.1f} ms, "
      f"gRPC {s['quiet_p99_us']['grpc'] / 1000:.1f} ms (median of the phases' p99).")
    w("")
    w("| t (min) | event | checked | took | refused | failed at the client (reload) | lost | p99 REST / gRPC in its phase, ms | what happened |")
    w("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: | --- |")
    for e in s["events"]:
        w(f"| {e['t'] / 60:.1f} | {e['kind']} | {'yes' if e['ok'] else 'NO'} | {e['seconds']:.1f} s | {e['refused']} | "
          f"{e['unsent_at_reload']} | {e['lost']} | {e['p99_us'].get('rest', 0) / 1000:.1f} / {e['p99_us'].get('grpc', 0) / 1000:.1f} | {e['detail']} |")
    w("")
    w("| phase | start (min) | event | REST sent | answered | refused | lost | p99 ms | gRPC sent | answered | refused | lost | p99 ms |")
    w("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    by_phase = {}
    for r in rows:
        by_phase.setdefault(r["phase"], {})[r["proto"]] = r
    for ph in sorted(by_phase):
        r, g = by_phase[ph].get("rest"), by_phase[ph].get("grpc")
        cells = []
        for x in (r, g):
            cells += [str(x["sent"]), str(x["answered"]), str(x["refused"]), str(x["lost"]), f"{x['p99_us'] / 1000:.1f}"] if x else ["-"] * 5
        first = r or g
        w(f"| {ph} | {first['start'] / 60:.1f} | {first['event'] or ''} | " + " | ".join(cells) + " |")
    w("")
    w("Goals: " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in s["goals"].items()) + ".")
    return "\n".join(line for line in out if line is not None) + "\n"


if __name__ == "__main__":
    sys.exit(main())
