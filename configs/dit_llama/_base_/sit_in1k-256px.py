# SiT / SiT-LLaMA: the DiT recipe (optimiser, batch, EMA, data, VAE, fp16 AMP) with flow matching
# instead of DDPM (the official sit/train.py): linear interpolant, velocity prediction, no loss
# weighting, train / sample eps 0; sampling by the Euler-Maruyama SDE with 250 steps (sigma
# diffusion, a mean last step of 0.04: the paper's Table 8). The ODE sampler of Table 9 (dopri5,
# atol 1e-6, rtol 1e-3):
#   --cfg-options model.objective.sampler._delete_=True model.objective.sampler.mode=ode
# The SiT-LLaMA FIDs are without guidance, hence cfg_scale 1.0.
_base_ = ['./dit_in1k-256px.py']

model = dict(
    denoiser=dict(patch_size=2),
    objective=dict(
        _delete_=True,
        type='FlowMatching', path='linear', prediction='velocity', train_eps=0., sample_eps=0.,
        sampler=dict(mode='sde', num_steps=250, diffusion_form='sigma', diffusion_norm=1.0,
                     last_step='mean', last_step_size=0.04)),
    cfg_scale=1.0)
