//go:build tools

// Package tools pins the Pulumi CLI build; `go build` of the listed
// main package uses exactly the versions in go.mod / go.sum.
package tools

import _ "github.com/pulumi/pulumi/pkg/v3/cmd/pulumi"
