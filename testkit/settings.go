package testkit

import (
	"fmt"

	"go.uber.org/zap/zaptest/observer"
)

// SettingChanges takes the "changed setting" lines (actors.SettingChanged)
// from logs, each as "setting: old -> new", in log order; other lines are
// taken too and dropped.
func SettingChanges(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.TakeAll() {
		if e.Message != "changed setting" {
			continue
		}
		f := e.ContextMap()
		out = append(out, fmt.Sprintf("%v: %v -> %v", f["setting"], f["old"], f["new"]))
	}
	return out
}
