"""Stage seconds of `exactcompress compress --method auto` on the 3072-input bench nets, one fresh process each."""
import json, subprocess, sys, time, resource, pathlib
zoo = pathlib.Path("/work/main/out/bench_zoo")
nets = sys.argv[1:]
rows = []
for name in nets:
    out = pathlib.Path(f"/tmp/i12/out/{name}")
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "/work/main/.venv/bin/exactcompress", "compress", str(zoo / f"{name}.pt"),
                        "--out", str(out), "--time-limit", "300", "--force", "--quiet"], capture_output=True, text=True)
    wall = time.monotonic() - t
    rss = int(p.stderr.strip().splitlines()[-1]) / 1024
    r = json.loads((out / "report.json").read_text())
    s = r["seconds"]
    row = dict(net=name, status=r["status"], neurons=f'{r["neurons_before"]} -> {r["neurons_after"]}', wall=round(wall, 1),
               **{k: round(s.get(k, 0.0), 2) for k in ("bounds", "witnesses", "prove", "bab", "verify", "total")},
               verify_share=f'{100 * s["verify"] / s["total"]:.0f}%', rss_mib=round(rss))
    print(json.dumps(row), flush=True)
    rows.append(row)
json.dump(rows, open("/tmp/i12/stages.json", "w"), indent=1)
