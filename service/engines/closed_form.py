"""Closed-form matting (Levin et al. 2008) on the unknown pixels of a region, given the others.

pymatting provides the matting Laplacian (``cf_laplacian``), the incomplete-Cholesky
preconditioner and the conjugate-gradient solver; its ``estimate_alpha_cf`` takes a trimap
whose known pixels are 0 or 1 and has no prior term. The classical engine's corrective rounds
keep soft alpha from the previous round as known values, and the native-resolution refinement
pulls the solution towards the upsampled matte, so both assemble the same system here: for the
unknown pixels ``U`` and known ``K``, ``(L_UU + λI) α_U = -L_UK α_K + λ α_prior``.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from pymatting import cf_laplacian, cg, ichol


def closed_form(
    photo: np.ndarray,
    values: np.ndarray,
    unknown: np.ndarray,
    *,
    prior_weight: float = 0.0,
    rtol: float = 1e-7,
    max_iterations: int = 10_000,
) -> np.ndarray:
    """``photo`` (h, w, 3) float64 in [0, 1]; ``values`` (h, w) float64: the known pixels' alpha
    in [0, 1] and, where ``prior_weight`` (λ) > 0, the prior the ``unknown`` pixels (bool (h, w))
    are pulled towards (also the solver's start). Returns the (h, w) float64 alpha with the
    unknown pixels solved and clipped to [0, 1]. With λ = 0 and 0/1 known values this is
    pymatting's ``estimate_alpha_cf`` bit for bit. Raises ``ArithmeticError`` when the solution is
    not finite (and whatever the solver raises)."""
    is_unknown = unknown.ravel()
    is_known = ~is_unknown
    flat = values.ravel()
    rows = cf_laplacian(photo, is_known=is_known)[is_unknown]
    system = rows[:, is_unknown]
    rhs = -rows[:, is_known].dot(flat[is_known])
    start = None
    if prior_weight > 0.0:
        start = flat[is_unknown]
        system = (system + prior_weight * sp.identity(system.shape[0], format="csr")).tocsr()
        rhs = rhs + prior_weight * start
    if not rhs.any():
        # Every known neighbour is 0 (and so is the prior): alpha is 0, which pymatting's cg would
        # reach through a division by zero.
        solution = np.zeros(system.shape[0])
    else:
        solution = cg(system, rhs, x0=start, M=ichol(system), rtol=rtol, maxiter=max_iterations)
    if not np.isfinite(solution).all():
        raise ArithmeticError("closed-form matting gave a non-finite alpha")
    out = flat.copy()
    out[is_unknown] = np.clip(solution, 0.0, 1.0)
    return out.reshape(values.shape)
