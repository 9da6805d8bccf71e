# Every image a region runs is pinned by digest, so what runs is what was reviewed.
package vardhub.compliance

import rego.v1

deny contains v if {
	some node in vardhub("RegionalNode")
	some i, job in node.spec.mappingJobs
	image := job.image
	not pinned(image)
	v := violation("pinned-images", node, sprintf("spec.mappingJobs[%d].image", [i]), sprintf("image \"%s\" is not pinned by a digest (@sha256: and 64 hex digits)", [image]))
}

deny contains v if {
	some node in vardhub("RegionalNode")
	image := node.spec["export"].image
	not pinned(image)
	v := violation("pinned-images", node, "spec.export.image", sprintf("image \"%s\" is not pinned by a digest (@sha256: and 64 hex digits)", [image]))
}

# `<repository>@sha256:` and 64 lower-case hex digits.
pinned(image) if {
	parts := split(image, "@sha256:")
	count(parts) == 2
	count(parts[1]) == 64
	every c in split(parts[1], "") {
		contains("0123456789abcdef", c)
	}
}
