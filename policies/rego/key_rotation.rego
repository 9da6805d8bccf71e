# Every region's key is rotated, at most every data.settings.max_rotation_days days.
package vardhub.compliance

import rego.v1

deny contains v if {
	some node in vardhub("RegionalNode")
	not node.spec.keys.rotationPeriodDays
	v := violation("key-rotation", node, "spec.keys.rotationPeriodDays", "the region's key must be rotated: set a rotation period")
}

deny contains v if {
	some node in vardhub("RegionalNode")
	days := node.spec.keys.rotationPeriodDays
	days > data.settings.max_rotation_days
	v := violation("key-rotation", node, "spec.keys.rotationPeriodDays", sprintf("%d days is longer than the maximum of %d", [days, data.settings.max_rotation_days]))
}
