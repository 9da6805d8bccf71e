# Shared helpers of the compliance rules. Input: {"documents": [...], "rendered": [...]}:
# the directory's own documents and the objects the operator would create for them.
package vardhub.compliance

import rego.v1

violation(rule, doc, field, message) := {
	"rule": rule,
	"object": sprintf("%s %s", [doc.kind, object_name(doc)]),
	"field": field,
	"message": message,
}

object_name(doc) := sprintf("%s/%s", [doc.metadata.namespace, doc.metadata.name]) if {
	doc.metadata.namespace
} else := doc.metadata.name

vardhub(kind) := [doc | some doc in input.documents; doc.apiVersion == "vardhub.io/v1alpha1"; doc.kind == kind]
