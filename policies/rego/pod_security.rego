# Every workload, the operator's and any other in the directory, meets Pod Security
# "restricted": non-root, no privilege escalation, all capabilities dropped, seccomp.
package vardhub.compliance

import rego.v1

workloads contains w if {
	some doc in array.concat(input.documents, input.rendered)
	doc.kind in {"Deployment", "StatefulSet", "DaemonSet", "Job"}
	w := {"doc": doc, "pod": doc.spec.template.spec, "path": "spec.template.spec"}
}

workloads contains w if {
	some doc in array.concat(input.documents, input.rendered)
	doc.kind == "CronJob"
	w := {"doc": doc, "pod": doc.spec.jobTemplate.spec.template.spec, "path": "spec.jobTemplate.spec.template.spec"}
}

deny contains v if {
	some w in workloads
	some i, c in w.pod.containers
	not c.securityContext.allowPrivilegeEscalation == false
	v := violation("pod-security-restricted", w.doc, sprintf("%s.containers[%d].securityContext.allowPrivilegeEscalation", [w.path, i]), "must be false")
}

deny contains v if {
	some w in workloads
	some i, c in w.pod.containers
	not "ALL" in object.get(c, ["securityContext", "capabilities", "drop"], [])
	v := violation("pod-security-restricted", w.doc, sprintf("%s.containers[%d].securityContext.capabilities.drop", [w.path, i]), "must drop ALL")
}

deny contains v if {
	some w in workloads
	some i, c in w.pod.containers
	not object.get(c, ["securityContext", "runAsNonRoot"], object.get(w.pod, ["securityContext", "runAsNonRoot"], false)) == true
	v := violation("pod-security-restricted", w.doc, sprintf("%s.containers[%d].securityContext.runAsNonRoot", [w.path, i]), "must run as non-root")
}

deny contains v if {
	some w in workloads
	not object.get(w.pod, ["securityContext", "seccompProfile", "type"], "") in {"RuntimeDefault", "Localhost"}
	v := violation("pod-security-restricted", w.doc, sprintf("%s.securityContext.seccompProfile.type", [w.path]), "must be RuntimeDefault or Localhost")
}
