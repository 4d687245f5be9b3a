"""The SOAP (PIXv3/PDQv3) half of the security suite (``scenarios/security/soap-*.yaml``): client
certificates on the v3 endpoints, and the sender device bound to the certificate — against the reference
hub, and against mutant hubs that each have one of the holes.

Two hubs run in-process on the mini world: the reference (SOAP over HTTPS, client certificates required)
and a weak one whose SOAP listener is plain HTTP and trusts ``sender/device/id`` as sent. A mutant is a TLS
front door in front of the weak hub's SOAP port (:class:`tests.test_security_mllp.Front`, which pipes bytes
and so carries HTTP as well as MLLP):

* ``any-certificate``: terminates TLS with the hub's certificate but asks for no client certificate;
* ``other-ca``: trusts another CA, so every facility is refused (the controls must fail).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.scenarios import LoadedScenario, WorldIndex, discover
from harness.scenarios.engine import run
from harness.targets import Target
from simulator.pki import Pki, ensure_pki

from .hubrun import RunningHub
from .test_security_mllp import Front, _server_context, failures

REPO = Path(__file__).resolve().parents[1]
SECURITY = REPO / "scenarios" / "security"


@pytest.fixture(scope="module")
def suite() -> list[LoadedScenario]:
    found = [s for s in discover(REPO / "scenarios", [SECURITY]) if s.path.name.startswith("soap-")]
    assert len(found) >= 2
    return found


MUTANT_OF = {
    "SEC-soap-sender-not-certificate": "any-certificate",
    "SEC-soap-mismatch-merge-had-no-effect": "any-certificate",
    "SEC-soap-anonymous-refused": "any-certificate",
    "SEC-soap-tls-feed-accepted": "other-ca",
    "SEC-soap-own-certificate-served": "other-ca",
}
"""Each assertion of the SOAP scenarios, and the mutant with the hole it is there to find."""


def test_the_soap_security_scenarios_pass_and_each_hole_fails_them(
    hubs: tuple[RunningHub, RunningHub], world: WorldIndex, suite: list[LoadedScenario], tmp_path: Path
) -> None:
    reference, weak = hubs
    assert reference.soap is not None
    assert reference.tls is not None
    assert weak.soap is not None
    target = Target(
        name="reference",
        kind="reference",
        mllp=reference.mllp,
        http=reference.base_url,
        users=world.users(),
        admin_token=reference.admin_token,
        mllp_tls=reference.tls,
        soap="https://{}:{}".format(*reference.soap),
        soap_tls=reference.tls,
        salt="secsoap-base",
    )
    baseline = run(suite, target, world, jobs=2)
    assert baseline.ok, failures(baseline)
    assert {a.assertion_id for a in baseline.assertions()} == set(MUTANT_OF), "each names its mutant"

    pki = Pki(reference.tls.ca_file.parent)
    other = ensure_pki(tmp_path / "other-ca", [])
    mutants = {
        "any-certificate": Front(weak.soap, _server_context(pki, require=False)),
        "other-ca": Front(weak.soap, _server_context(pki, require=True, trust=other.ca_file)),
    }
    failed: dict[str, set[str]] = {}
    for name, front in mutants.items():
        with front.running() as address:
            soap = "https://{}:{}".format(*address)
            result = run(suite, replace(target, soap=soap, salt=f"secsoap-{name}"), world, jobs=2)
        for a in result.assertions():
            if a.status == "failed":
                assert a.evidence, f"{name}: {a.key} failed without evidence"
        failed[name] = {a.assertion_id for a in result.assertions() if a.status == "failed"}
    missed = {aid: mutant for aid, mutant in MUTANT_OF.items() if aid not in failed[mutant]}
    assert not missed, f"assertions their mutant did not fail: {missed}; failed: {failed}"
