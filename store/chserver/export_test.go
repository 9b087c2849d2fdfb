package chserver

// SettingsSent names every setting this engine sends, in any mode.
func SettingsSent() []string {
	var names []string
	for _, m := range []map[string]any{sessionSettings("c"), querySettings, insertSettings("t", "c", nil)} {
		for k := range m {
			names = append(names, k)
		}
	}
	return names
}
