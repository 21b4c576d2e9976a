#!/usr/bin/env python3
"""Writes src/ics/windows_zones.rs from CLDR's windowsZones, as the JSON of
the `cldr-core` npm package (`npm pack cldr-core@VERSION`, then
`package/supplemental/windowsZones.json`):

    scripts/windows-zones.py package/supplemental/windowsZones.json 48.2.0 > src/ics/windows_zones.rs

Only the territory `001` rows are kept: CLDR's world-wide answer for each
Windows name, the one a feed's TZID can be read as without knowing where
the school is.
"""

import json
import sys

source, version = sys.argv[1], sys.argv[2]
data = json.load(open(source, encoding="utf-8"))["supplemental"]
cldr = data["version"]["_cldrVersion"]
rows = sorted(
    (zone["mapZone"]["_other"], zone["mapZone"]["_type"])
    for zone in data["windowsZones"]["mapTimezones"]
    if zone["mapZone"]["_territory"] == "001"
)
print(f"""//! CLDR's table of Windows zone names (`Eastern Standard Time`) and the IANA
//! zone each stands for world-wide (territory `001`), the names Outlook and
//! Exchange write in a feed's TZID. Generated from CLDR {cldr}
//! (`common/supplemental/windowsZones.xml`, as JSON in the `cldr-core`
//! {version} package: `supplemental/windowsZones.json`) by
//! `scripts/windows-zones.py`; regenerate it rather than edit it.

/// (Windows name, IANA zone), sorted by the Windows name for a binary search.
pub const WINDOWS_ZONES: &[(&str, &str)] = &[""")
for windows, iana in rows:
    print(f'    ("{windows}", "{iana}"),')
print("];")
