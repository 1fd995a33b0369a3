# SiT / SiT-LLaMA: the DiT recipe (optimiser, batch, EMA, data, VAE) with flow matching instead of DDPM
# (sit/train.py): linear interpolant, velocity prediction; sampling by the Euler-Maruyama SDE with 250
# steps (the paper's Table 8). The ODE sampler of Table 9 (dopri5, atol 1e-6, rtol 1e-3):
#   --cfg-options model.objective.sampler.mode=ode model.objective.sampler.method=dopri5
# The SiT-LLaMA FIDs are without guidance, hence cfg_scale 1.0.
_base_ = ['./dit_in1k-256px.py']

model = dict(
    denoiser=dict(patch_size=2),
    objective=dict(
        _delete_=True,
        type='FlowMatching', path='linear', prediction='velocity',
        sampler=dict(mode='sde', num_steps=250, diffusion_form='sigma', diffusion_norm=1.0,
                     last_step='mean', last_step_size=0.04)),
    cfg_scale=1.0)
