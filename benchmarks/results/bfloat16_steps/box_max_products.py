import torch, numpy as np, time
from exactcompress.engine.prove.bab_bounds import Net, box_max
torch.set_num_threads(1)
rng = np.random.default_rng(0)
for d, n0 in ((64, 200), (3072, 100), (784, 400)):
    W = rng.normal(size=(n0, d)) / np.sqrt(d); b = rng.normal(size=n0)
    P = Net([W], [b], np.ones(n0), 0.0, np.zeros(d), np.ones(d), torch.float64, torch.device("cpu"))
    P32 = P.with_dtype(torch.float32)
    cz = torch.randn(32, 101, n0)
    v1, _, g1 = box_max(P32, cz, True, magnitude=False, smoothing=0.1)
    low = P32.spread_low; P32.spread_low = None
    v0, _, g0 = box_max(P32, cz, True, magnitude=False, smoothing=0.1)
    t = time.perf_counter(); [box_max(P32, cz, True, magnitude=False, smoothing=0.1) for _ in range(5)]; t0 = time.perf_counter() - t
    P32.spread_low = low
    t = time.perf_counter(); [box_max(P32, cz, True, magnitude=False, smoothing=0.1) for _ in range(5)]; t1 = time.perf_counter() - t
    print(d, n0, "value rel err", float(((v1 - v0).abs() / v0.abs()).max()), "grad rel err", float((g1 - g0).norm() / g0.norm()), f"fp32 {t0/5*1e3:.1f} ms bf16 {t1/5*1e3:.1f} ms")
