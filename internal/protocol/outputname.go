package protocol

import "strings"

// OutputNameKey is the form in which job output names are compared: GitHub
// Actions reads step outputs case-insensitively (a later "Exit-Code=0"
// overwrites an earlier "exit-code=3"), so two names that differ only in
// case are one name. Every place that compares output names — against each
// other or against a reserved set — compares their keys. Valid names
// (ValidOutputName) are ASCII, so lower-casing them is exact.
func OutputNameKey(name string) string { return strings.ToLower(name) }
