# Every dataset names its legal basis, and every dataset that is not public the health data
# access body that grants access (open data needs no access decision).
package vardhub.compliance

import rego.v1

deny contains v if {
	some ds in vardhub("Dataset")
	not ds.spec.legalBasis
	v := violation("dataset-legal-basis", ds, "spec.legalBasis", "a dataset must name its legal basis")
}

deny contains v if {
	some ds in vardhub("Dataset")
	ds.spec.accessRights != "PUBLIC"
	not ds.spec.healthDataAccessBody
	v := violation("dataset-legal-basis", ds, "spec.healthDataAccessBody", "a dataset that is not public must name the health data access body")
}
