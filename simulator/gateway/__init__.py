"""Facility gateways: each disclosing facility's SS-MIX2 storage, documents and PACS over HTTP.

The hub fetches from gateways; data never leaves the facility otherwise. The contract (endpoints, entry
IDs, faults, the ready line) is in the modules' docstrings: :mod:`~simulator.gateway.app` (HTTP API),
:mod:`~simulator.gateway.entries` (entry IDs, shared with the hub), :mod:`~simulator.gateway.faults`
(admin API), :mod:`~simulator.gateway.shard` (many gateways in one process; ``python -m
simulator.gateway``).
"""

from simulator.gateway.app import LinkShaper, create_gateway_app
from simulator.gateway.catalog import CONTENT_TYPES, Catalog, FacilityConfig, Study, StudyIndex
from simulator.gateway.entries import (
    DATA_TYPES,
    DOCUMENT_CATEGORIES,
    MAX_ENTRY_ID,
    EntryKind,
    EntryRef,
    category_of_data_type,
    document_ref,
    hl7_ref,
    image_ref,
    parse_entry_id,
)
from simulator.gateway.errors import EntryIdError, GatewayError, UnknownDataTypeError
from simulator.gateway.faults import ADMIN_TOKEN_ENV, FaultMode, FaultRequest, FaultState, create_admin_app
from simulator.gateway.shard import Listener, ReadyInfo, Shard, disclosing_codes, partition, serve_gateways

__all__ = [
    "ADMIN_TOKEN_ENV",
    "CONTENT_TYPES",
    "DATA_TYPES",
    "DOCUMENT_CATEGORIES",
    "MAX_ENTRY_ID",
    "Catalog",
    "EntryIdError",
    "EntryKind",
    "EntryRef",
    "FacilityConfig",
    "FaultMode",
    "FaultRequest",
    "FaultState",
    "GatewayError",
    "LinkShaper",
    "Listener",
    "ReadyInfo",
    "Shard",
    "Study",
    "StudyIndex",
    "UnknownDataTypeError",
    "category_of_data_type",
    "create_admin_app",
    "create_gateway_app",
    "disclosing_codes",
    "document_ref",
    "hl7_ref",
    "image_ref",
    "parse_entry_id",
    "partition",
    "serve_gateways",
]
