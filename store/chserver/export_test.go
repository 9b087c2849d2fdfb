package chserver

import "strings"

// SettingsSent names every setting this engine sends, in any mode.
func SettingsSent() []string {
	var names []string
	for _, m := range []map[string]any{sessionSettings("c"), settingsFor(strings.Repeat(" ", defaultMaxQuerySize+1)), insertSettings("t", "c", nil)} {
		for k := range m {
			names = append(names, k)
		}
	}
	return names
}

// SettingsFor exposes the settings a query is sent with.
func SettingsFor(sql string) map[string]any { return settingsFor(sql) }
