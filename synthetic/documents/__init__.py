"""Clinical documents as HL7 CDA R2 XML in Japanese, for SS-MIX2 extended storage.

Four kinds — 退院時サマリー, 診療情報提供書, 経過記録 (SOAP), 看護記録 — are rendered from plain facts
(:class:`DocumentSpec`) into a CDA R2 document (``urn:hl7-org:v3``) laid out the way Japanese CDA documents
are: realmCode JP, patient names twice (kanji ``use="IDE"``, kana ``use="SYL"``), JST timestamps, facility
identifiers from the MHLW OID arcs, and a structuredBody whose sections carry LOINC codes, a Japanese
narrative and coded entries for diagnoses (ICD-10) and prescriptions.

Identifiers and codes (verified = found in published JP/HL7 specification sources, see the report):

* Document types (LOINC, 2.16.840.1.113883.6.1): 18842-5 退院時サマリー and 57133-1 診療情報提供書 (JAMI/HL7
  Japan 文書区分コード), 11506-3 経過記録 and 34746-8 看護記録 (LOINC document ontology).
* Section codes: LOINC as listed in the FHIR ``doc-section-codes`` value set / C-CDA; some Japanese sections
  (宛先, 依頼事項, 患者の反応, 申し送り) have no LOINC equivalent and are left uncoded (code is optional).
* Patient ID root: the spec's ``id_oid`` (1.2.392.100495.20.3.51.1 + 医療機関コード).
* Author ID root: 1.2.392.100495.20.3.41.1 + 医療機関コード (医師ID namespace, MHLW 電子処方箋 OID table).
* Organizations: 都道府県番号 1.2.392.100495.20.3.21, 点数表番号 .22, 医療機関番号 (7 digits) .23.
* Department: SS-MIX統一診療科コード 1.2.392.100495.20.2.51, on ``assignedAuthor/code``.
* Diagnoses: ICD-10 2.16.840.1.113883.6.3; codes are written in the dotted WHO form (I639 → I63.9).
* [Choice] Document ID root and templateIds: no verified Japanese arc exists for generic document IDs
  (…20.3.41 is the doctor-ID namespace, …20.3.11 the prescription-number one), so both are UUID-derived
  OIDs (``2.25.<uuid5>``, ITU-T X.667): ``2.25.<uuid5(OID, "rhin.cda.document.<医療機関コード>")>`` per
  custodian, and ``2.25.<uuid5(OID, "rhin.cda.template.<kind>")>`` per kind. Globally unique and stable.

Wording varies by document, from a generator seeded with a stable hash of ``document_id``; the same spec
always renders to the same bytes. Rendering is plain string building (ElementTree is several times
slower), because hundreds of thousands of documents are rendered per world.
"""

from __future__ import annotations

from synthetic.documents.render import document_root, render_cda
from synthetic.documents.spec import (
    DOCUMENT_TYPES,
    CdaPerson,
    DocumentKind,
    DocumentSpec,
    Dx,
    Lab,
    Org,
    PatientInfo,
    Proc,
    Rx,
)

__all__ = [
    "DOCUMENT_TYPES",
    "CdaPerson",
    "DocumentKind",
    "DocumentSpec",
    "Dx",
    "Lab",
    "Org",
    "PatientInfo",
    "Proc",
    "Rx",
    "document_root",
    "render_cda",
]
