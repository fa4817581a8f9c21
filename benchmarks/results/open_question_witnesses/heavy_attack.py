"""A heavy witness search on given "can it be positive?" questions (LAYER:NEURON, hidden layers from 0): float32 Adam
from STARTS uniform points, its step annealed from 0.02 to 0 over STEPS (cosine), clipped to [0, 1]; every 250 steps
the points go through the float64 forward pass, which alone decides. Prints each question's best value.

    python heavy_attack.py out/bench_zoo/d64-5x100-l1_0.pt 256 1000 <the 112 open questions of
        auto_120s_d64-5x100-l1_0_report.json>                       (heavy_256x1000_d64-5x100-l1_0.log)
    python heavy_attack.py out/bench_zoo/d64-5x100-l1_0.pt 4096 3000 2:8 1:93 2:46 2:82   (heavy_d64-5x100-l1_0.log)
    python heavy_attack.py out/bench_zoo/d64-3x100-l1_0.pt 2048 3000 2:19 2:40 2:39       (heavy_d64-3x100-l1_0.log)"""
import sys, time, numpy as np, torch
from exactcompress.io import load_network
model, starts, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(1)
net, _ = load_network(model)
Ws = [torch.tensor(np.asarray(l.weight), dtype=torch.float32) for l in net.hidden]
bs = [torch.tensor(np.asarray(l.bias), dtype=torch.float32) for l in net.hidden]
for spec in sys.argv[4:]:
    li, j = map(int, spec.split(":"))
    t0 = time.time()
    x = torch.rand(starts, net.input_dim, generator=torch.Generator().manual_seed(j)).requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02); sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    best = -np.inf
    for s in range(steps):
        h = x
        for k in range(li + 1):
            g = h @ Ws[k].T + bs[k]; h = torch.relu(g)
        opt.zero_grad(); (-g[:, j].sum()).backward(); opt.step(); sched.step()
        with torch.no_grad(): x.clamp_(0, 1)
        if s % 250 == 249 or s == steps - 1:
            v = net.preactivations(x.detach().numpy().astype(np.float64))[li][:, j]
            best = max(best, v.max())
            if best > 1e-9: break
    print(f"layer {li} neuron {j}: best {best:.6g} ({time.time()-t0:.1f} s)", flush=True)
