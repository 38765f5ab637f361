"""The gaussian.* theorems (proofs/gaussian_theorems.py) are proved in quick mode, and
each fails when the code it checks is replaced by a known-wrong variant (negative
controls: the proofs drive the reference's own functions)."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

from specoracle.proofs import gaussian_theorems as gt
from specoracle.proofs.theorems import ProofFailure, all_theorems, run_theorem
from specoracle.reference import gaussian as g

IDS = ["gaussian.reflection_exact", "gaussian.gamma_residual_exact",
       "gaussian.acceptance_closed_form", "gaussian.block_lossless"]


@pytest.mark.parametrize("theorem_id", IDS)
def test_theorem_is_proved(theorem_id):
    theorem = {t.id: t for t in all_theorems()}[theorem_id]
    result = run_theorem(theorem, quick=True)
    assert result.status == "proved", result.detail
    assert result.cases > 0


def _reflect_wrong_sign(m_p, m_q, s, z):
    big_d = (m_q - m_p) / s
    e = big_d / np.linalg.norm(big_d)
    return m_p - s * (z - 2 * (e @ z) * e)


def _naive_log_mass(log_c, delta):
    c = math.exp(log_c)
    s_star = delta / 2 - log_c / delta
    val = c * (1 - special.ndtr(s_star - delta)) - (1 - special.ndtr(s_star))
    return math.log(val) if val > 0 else -math.inf


def _residual_without_scale(m_p, m_q, s, log_c, u_res, z_orth, w_reuse, _orig=g._residual_core):
    return _orig(m_p, m_q, s, 0.0, u_res, z_orth, w_reuse)


def _block_with_token_rule(m_p, m_q, s, z, eta, u_res, z_orth):
    return g.verify_gaussian_chain(m_p, m_q, s, z, eta, u_res, z_orth, coupling="gamma")


CONTROLS = [
    ("reflection wrong sign", "_reflect", _reflect_wrong_sign, gt.check_reflection),
    ("residual mass by CDF differences", "_log_mass", _naive_log_mass, gt.check_gamma_residual),
    ("scaled residual without c = p_tau", "_residual_core", _residual_without_scale,
     gt.check_block_lossless),
    ("block verification with the token rule", "verify_gaussian_block", _block_with_token_rule,
     gt.check_block_lossless),
]


@pytest.mark.parametrize("name,attr,wrong,check", CONTROLS, ids=[c[0] for c in CONTROLS])
def test_negative_controls_fail_the_proofs(name, attr, wrong, check, monkeypatch):
    monkeypatch.setattr(g, attr, wrong)
    with pytest.raises(ProofFailure):
        check(True)
