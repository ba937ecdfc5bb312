package wire

import (
	"fmt"
	"strconv"
	"strings"
)

// SyncStatus is Kong's clustering_data_planes.sync_status.
type SyncStatus string

// Sync statuses, as Kong names them.
const (
	SyncStatusUnknown                   SyncStatus = "unknown"
	SyncStatusNormal                    SyncStatus = "normal"
	SyncStatusKongVersionIncompatible   SyncStatus = "kong_version_incompatible"
	SyncStatusPluginSetIncompatible     SyncStatus = "plugin_set_incompatible"
	SyncStatusPluginVersionIncompatible SyncStatus = "plugin_version_incompatible"
	SyncStatusFilterSetIncompatible     SyncStatus = "filter_set_incompatible"
)

// Codes of the compatibility issues this package reports. They are stable:
// clients may match on them.
const (
	// IssueVersionIncompatible: the node's version cannot be served at all.
	IssueVersionIncompatible = "C101"
	// IssuePluginMissing: a configured plugin is not loaded on the node.
	IssuePluginMissing = "C102"
	// IssuePluginVersion: a configured plugin's version on the node is
	// newer in minor, or differs in major, from the control plane's.
	IssuePluginVersion = "C103"
	// IssueFieldRemoved (warning): a field set to something other than its
	// default is unknown to the node's version and was left out of the
	// configuration it receives.
	IssueFieldRemoved = "C104"
	// IssueValueReplaced (warning): a value unknown to the node's version was
	// replaced by one it knows.
	IssueValueReplaced = "C105"
	// IssueEntityTypeRemoved (warning): entities of a type unknown to the
	// node's version were left out of the configuration it receives.
	IssueEntityTypeRemoved = "C106"
	// IssueVersionNewer (warning): the node runs a newer minor version than
	// the control plane's; it gets the control plane's configuration format.
	IssueVersionNewer = "C107"
)

// Issue severities.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// CompatibilityIssue is one reason a node cannot (fully) run its group's
// configuration, in the shape of Konnect's node compatibility issues.
type CompatibilityIssue struct {
	// Code is one of the Issue constants.
	Code string `json:"code"`
	// Severity is SeverityError when the configuration is withheld from the
	// node, SeverityWarning when it is sent anyway.
	Severity string `json:"severity"`
	// Description says what is wrong, for people.
	Description string `json:"description"`
	// Resolution says how to fix it, for people.
	Resolution string `json:"resolution"`
	// AffectedResources lists the entities involved, if any.
	AffectedResources []AffectedResource `json:"affected_resources"`
}

// AffectedResource names one entity in a [CompatibilityIssue].
type AffectedResource struct {
	// ID is the entity's UUID.
	ID string `json:"id"`
	// Type is the entity type, e.g. "plugin".
	Type string `json:"type"`
}

// IncompatibleError is returned when a node must not receive the
// configuration. The CP records Status as the node's sync status and shows
// Issue in the node catalogue.
type IncompatibleError struct {
	// Status is the sync status to record for the node.
	Status SyncStatus
	// Message is Kong's log and close message for this case.
	Message string
	// Issue is the same failure for the node catalogue.
	Issue CompatibilityIssue
}

// Error implements error.
func (e *IncompatibleError) Error() string { return e.Message }

// ParseMajorMinor extracts major and minor from a version that starts with
// "<digits>.<digits>.<digits>", as Kong's compat code does; anything may
// follow ("3.4.3.12-enterprise-edition", "3.10.0-rc.1"). ok is false when
// the version does not start that way.
func ParseMajorMinor(version string) (major, minor int, ok bool) {
	parts := strings.SplitN(version, ".", 3)
	if len(parts) < 3 {
		return 0, 0, false
	}
	patch := parts[2]
	n := 0
	for n < len(patch) && patch[n] >= '0' && patch[n] <= '9' {
		n++
	}
	if n == 0 {
		return 0, 0, false
	}
	major, err1 := atoiDigits(parts[0])
	minor, err2 := atoiDigits(parts[1])
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return major, minor, true
}

func atoiDigits(s string) (int, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, fmt.Errorf("not digits: %q", s)
	}
	return strconv.Atoi(s)
}

// CheckVersionCompatibility decides at connect time whether a data plane
// of dpVersion may be served by a control plane that speaks cpVersion
// (the Kong version whose protocol and formats the CP produces). It refuses
// an unparsable version and a different major; every minor, patch and
// suffix of the same major is accepted. The error is an *IncompatibleError
// with status kong_version_incompatible.
//
// Kong's own control plane also refuses a data plane of a newer minor than
// its own. Konnect does not: its control plane serves every supported Kong
// Gateway version of a major, older minors with a downgraded configuration.
// Gantry follows Konnect, because Kong minors only add to the declarative
// format within a major (a newer data plane loads what an older control
// plane produces) and users upgrade data planes independently of Gantry. A
// newer minor is therefore accepted; [NewerVersionIssue] describes it as a
// warning for the node catalogue.
func CheckVersionCompatibility(cpVersion, dpVersion string) error {
	cpMajor, cpMinor, ok := ParseMajorMinor(cpVersion)
	if !ok {
		return versionIssue(cpVersion, dpVersion,
			"data plane version "+dpVersion+" is incompatible with control plane version",
			"Configure the control plane with a valid Kong version.")
	}
	accepted := fmt.Sprintf("%d.x.y are accepted", cpMajor)
	resolution := fmt.Sprintf("Run a data plane of Kong Gateway %d.x (%d.%d.x is the newest version the control plane produces configuration for).",
		cpMajor, cpMajor, cpMinor)
	dpMajor, _, ok := ParseMajorMinor(dpVersion)
	switch {
	case !ok:
		return versionIssue(cpVersion, dpVersion,
			"data plane version is incompatible with control plane version "+cpVersion+" ("+accepted+")", resolution)
	case dpMajor != cpMajor:
		return versionIssue(cpVersion, dpVersion,
			"data plane version "+dpVersion+" is incompatible with control plane version "+cpVersion+" ("+accepted+")", resolution)
	}
	return nil
}

// NewerVersionIssue returns the warning for a data plane whose minor version
// is newer than the control plane's (same major), or nil when it is not.
func NewerVersionIssue(cpVersion, dpVersion string) *CompatibilityIssue {
	cpMajor, cpMinor, ok1 := ParseMajorMinor(cpVersion)
	dpMajor, dpMinor, ok2 := ParseMajorMinor(dpVersion)
	if !ok1 || !ok2 || cpMajor != dpMajor || dpMinor <= cpMinor {
		return nil
	}
	return &CompatibilityIssue{
		Code:     IssueVersionNewer,
		Severity: SeverityWarning,
		Description: fmt.Sprintf("The data plane runs Kong Gateway %s, newer than the version the control plane produces configuration for (%s): "+
			"it receives the %d.%d configuration, and settings added after %d.%d cannot be configured for it.",
			dpVersion, cpVersion, cpMajor, cpMinor, cpMajor, cpMinor),
		Resolution:        fmt.Sprintf("Upgrade the control plane to one that supports Kong Gateway %d.%d, or run data planes up to %d.%d.x.", dpMajor, dpMinor, cpMajor, cpMinor),
		AffectedResources: []AffectedResource{},
	}
}

func versionIssue(cpVersion, dpVersion, msg, resolution string) *IncompatibleError {
	return &IncompatibleError{
		Status:  SyncStatusKongVersionIncompatible,
		Message: msg,
		Issue: CompatibilityIssue{
			Code:              IssueVersionIncompatible,
			Severity:          SeverityError,
			Description:       fmt.Sprintf("The data plane runs version %q, which control plane version %s cannot serve: %s.", dpVersion, cpVersion, msg),
			Resolution:        resolution,
			AffectedResources: []AffectedResource{},
		},
	}
}

// ConfigurationCompatibility is the result of
// [CheckConfigurationCompatibility].
type ConfigurationCompatibility struct {
	// Status is SyncStatusNormal, or the status of the first failure in
	// control-plane plugin order (the one Kong would report).
	Status SyncStatus
	// Message is Kong's message for that first failure; empty when Status
	// is normal.
	Message string
	// Issues lists every failure, one per plugin, in the same order.
	Issues []CompatibilityIssue
}

// Compatible reports whether the configuration may be sent to the node.
func (c ConfigurationCompatibility) Compatible() bool { return c.Status == SyncStatusNormal }

// CheckConfigurationCompatibility decides, before each push, whether the
// configuration config may be sent to a data plane that loaded dpPlugins,
// given the plugins cpPlugins the control plane knows (in the order to
// check them; Kong sorts them by name). Only plugins both known to the CP
// and configured in config["plugins"] are checked:
//
//   - the DP lacks the plugin: plugin_set_incompatible;
//   - both versions parse and the majors differ or the DP's minor is newer:
//     plugin_version_incompatible.
//
// Extra DP plugins, and plugins with an unparsable version on either side,
// are fine. When the result is not compatible the CP must not send the
// configuration.
func CheckConfigurationCompatibility(cpPlugins, dpPlugins []PluginInfo, config map[string]any) ConfigurationCompatibility {
	configured := configuredPlugins(config)
	dp := make(map[string]PluginInfo, len(dpPlugins))
	for _, p := range dpPlugins {
		dp[p.Name] = p
	}
	res := ConfigurationCompatibility{Status: SyncStatusNormal, Issues: []CompatibilityIssue{}}
	fail := func(status SyncStatus, msg string, issue CompatibilityIssue) {
		if res.Status == SyncStatusNormal {
			res.Status, res.Message = status, msg
		}
		res.Issues = append(res.Issues, issue)
	}
	for _, cp := range cpPlugins {
		ids, ok := configured[cp.Name]
		if !ok {
			continue
		}
		affected := make([]AffectedResource, 0, len(ids))
		for _, id := range ids {
			affected = append(affected, AffectedResource{ID: id, Type: "plugin"})
		}
		d, present := dp[cp.Name]
		if !present {
			msg := "configured " + cp.Name + " plugin is missing from data plane"
			if cp.Version != "" {
				msg = "configured " + cp.Name + " plugin " + cp.Version + " is missing from data plane"
			}
			fail(SyncStatusPluginSetIncompatible, msg, CompatibilityIssue{
				Code:              IssuePluginMissing,
				Severity:          SeverityError,
				Description:       fmt.Sprintf("Plugin %q is configured but not installed on the data plane, so the configuration is not sent to it.", cp.Name),
				Resolution:        fmt.Sprintf("Install plugin %q on the data plane, or remove it from the configuration.", cp.Name),
				AffectedResources: affected,
			})
			continue
		}
		cpMajor, cpMinor, cpOK := ParseMajorMinor(cp.Version)
		dpMajor, dpMinor, dpOK := ParseMajorMinor(d.Version)
		if cpOK && dpOK && (cpMajor != dpMajor || cpMinor < dpMinor) {
			msg := "configured data plane " + cp.Name + " plugin version " + d.Version +
				" is different to control plane plugin version " + cp.Version
			fail(SyncStatusPluginVersionIncompatible, msg, CompatibilityIssue{
				Code:              IssuePluginVersion,
				Severity:          SeverityError,
				Description:       fmt.Sprintf("Plugin %q is version %s on the data plane and %s on the control plane, so the configuration is not sent to it.", cp.Name, d.Version, cp.Version),
				Resolution:        fmt.Sprintf("Run plugin %q at version %d.0 up to %d.%d on the data plane.", cp.Name, cpMajor, cpMajor, cpMinor),
				AffectedResources: affected,
			})
		}
	}
	return res
}

// configuredPlugins maps each plugin name in config["plugins"] to the ids
// of the plugin entities that use it.
func configuredPlugins(config map[string]any) map[string][]string {
	out := map[string][]string{}
	list, _ := config["plugins"].([]any)
	for _, e := range list {
		p, ok := e.(map[string]any)
		if !ok {
			continue
		}
		name, _ := p["name"].(string)
		if name == "" {
			continue
		}
		ids := out[name]
		if ids == nil {
			// Record the name even when the entity has no id.
			ids = []string{}
		}
		if id, _ := p["id"].(string); id != "" {
			ids = append(ids, id)
		}
		out[name] = ids
	}
	return out
}
