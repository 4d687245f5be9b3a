"""The synthetic world: profile → facilities, people, care pathways and consents, as deterministic data.

``synthetic`` imports neither ``simulator`` nor ``harness``. Its public surface is re-exported here.
"""

from synthetic.consent import ConsentState, is_sharing
from synthetic.errors import DataTableError, ProfileError, SyntheticError, WorldFormatError
from synthetic.model import ITEM_CATEGORIES, Event, Facility, Patient, PatientRecord
from synthetic.profile import Profile, bundled_profiles, load_profile
from synthetic.stats import sharing_patients, world_stats
from synthetic.store import open_db, read_world_json, write_world
from synthetic.world import World, build

__all__ = [
    "ITEM_CATEGORIES",
    "ConsentState",
    "DataTableError",
    "Event",
    "Facility",
    "Patient",
    "PatientRecord",
    "Profile",
    "ProfileError",
    "SyntheticError",
    "World",
    "WorldFormatError",
    "build",
    "bundled_profiles",
    "is_sharing",
    "load_profile",
    "open_db",
    "read_world_json",
    "sharing_patients",
    "world_stats",
    "write_world",
]
