"""The engine's own attack (``bab._attack``: float64 Adam, a constant step, stopped when stalling) at several sizes
on one question: ``python engine_attack.py MODEL LAYER NEURON`` ("can it be positive?"; engine_attack_*.log)."""
import sys, time, numpy as np, torch
from exactcompress.io import load_network
from exactcompress.engine.prove.bab_bounds import Net
from exactcompress.engine.prove.bab import _attack
torch.set_num_threads(1)
net, _ = load_network(sys.argv[1]); layer, neuron = int(sys.argv[2]), int(sys.argv[3])
W = [np.asarray(l.weight, dtype=np.float64) for l in net.hidden[:layer]]
b = [np.asarray(l.bias, dtype=np.float64) for l in net.hidden[:layer]]
c = np.asarray(net.hidden[layer].weight[neuron], dtype=np.float64); d = float(net.hidden[layer].bias[neuron])
lo, hi = np.zeros(net.input_dim), np.ones(net.input_dim)
P = Net(W, b, c, d, lo, hi, torch.float64, torch.device("cpu"))
for starts, steps, lr in [(64, 300, 0.05), (64, 3000, 0.05), (256, 3000, 0.05), (64, 3000, 0.01), (256, 3000, 0.01), (1024, 1000, 0.02)]:
    rng = np.random.default_rng(1)
    t = time.time()
    X = _attack(P, rng.uniform(size=(starts, net.input_dim)), steps, lr, None, 1e-9)
    v = net.preactivations(X)[layer][:, neuron].max()
    print(starts, steps, lr, f"best {v:.5f}  {time.time()-t:.1f} s", flush=True)
