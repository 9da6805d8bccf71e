# Every image a region runs is pinned by digest, so what runs is what was reviewed.
package vardhub.compliance

import rego.v1

deny contains v if {
	some node in vardhub("RegionalNode")
	some i, job in node.spec.mappingJobs
	image := job.image
	not contains(image, "@sha256:")
	v := violation("pinned-images", node, sprintf("spec.mappingJobs[%d].image", [i]), sprintf("image \"%s\" is not pinned by digest (@sha256:...)", [image]))
}

deny contains v if {
	some node in vardhub("RegionalNode")
	image := node.spec["export"].image
	not contains(image, "@sha256:")
	v := violation("pinned-images", node, "spec.export.image", sprintf("image \"%s\" is not pinned by digest (@sha256:...)", [image]))
}
