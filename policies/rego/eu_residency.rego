# Storage and keys stay in the EU/EEA: every hub states where, and the place is one of the
# allowed locations (data.settings.eu_locations).
package vardhub.compliance

import rego.v1

deny contains v if {
	some hub in vardhub("DataHub")
	not hub.metadata.annotations["vardhub.io/assumption-eu-region"]
	v := violation("eu-residency", hub, "metadata.annotations[vardhub.io/assumption-eu-region]", "the hub must state where its storage and keys live")
}

deny contains v if {
	some hub in vardhub("DataHub")
	place := hub.metadata.annotations["vardhub.io/assumption-eu-region"]
	not allowed_place(place)
	v := violation("eu-residency", hub, "metadata.annotations[vardhub.io/assumption-eu-region]", sprintf("\"%s\" is not an allowed EU/EEA location", [place]))
}

allowed_place(place) if {
	some location in data.settings.eu_locations
	contains(lower(place), lower(location))
}
