// Package scenarios drives a lab.Lab from a YAML script: a title and teaching
// text, the cluster, manifests, and ordered steps with expected outcomes.
// (Not built yet.)
package scenarios
