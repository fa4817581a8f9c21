import torch, time
torch.set_num_threads(1)
for d, n0 in ((784, 400), (784, 200), (784, 100), (3072, 100), (3072, 32), (64, 400)):
    spread=torch.randn(n0,d); st=spread.T; G=spread@spread.T/d
    R=4096; flat=torch.randn(R,n0); rows=max(32, 2**17//d)
    def base():
        g=torch.empty_like(flat)
        for i in range(0,R,rows):
            ch=flat[i:i+rows]; part=ch@spread; torch.mm(part.sign_(),st,out=g[i:i+rows]); (g[i:i+rows]*ch).sum(-1)
    def gram():
        g=torch.empty_like(flat)
        for i in range(0,R,rows):
            ch=flat[i:i+rows]; sc=((ch@G)*ch).sum(-1).sqrt_().mul_(0.1).clamp_(min=1e-30)
            part=(ch/sc[:,None])@spread; torch.mm(torch.nn.functional.hardtanh_(part),st,out=g[i:i+rows]); (g[i:i+rows]*ch).sum(-1)
    def direct():
        g=torch.empty_like(flat)
        for i in range(0,R,rows):
            ch=flat[i:i+rows]; part=ch@spread; sc=part.square().mean(-1).sqrt_().mul_(0.1).clamp_(min=1e-30); part.div_(sc[:,None])
            torch.mm(torch.nn.functional.hardtanh_(part),st,out=g[i:i+rows]); (g[i:i+rows]*ch).sum(-1)
    res={}
    for f in (base,gram,direct):
        f(); t=time.perf_counter()
        for _ in range(3): f()
        res[f.__name__]=(time.perf_counter()-t)/3*1e3
    print(d, n0, {k: round(v,1) for k,v in res.items()})
