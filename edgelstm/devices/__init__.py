"""edgelstm.devices: deployment targets as TOML profiles (no torch, no runtime imports)."""
from edgelstm.devices.profile import DEFAULT, DeviceProfile, list_profiles, load_profile, parse_profile, usable

__all__ = ["DEFAULT", "DeviceProfile", "list_profiles", "load_profile", "parse_profile", "usable"]
