package runtime

import (
	"strings"

	"golang.org/x/sys/unix"
)

// mountOpts is the parsed form of an OCI mount's options list.
type mountOpts struct {
	flags       uintptr   // flags for the initial mount
	clear       uintptr   // flags the options explicitly turn off
	propagation []uintptr // applied one by one after the mount
	data        []string  // filesystem-specific options, passed as data
	recursiveRO bool      // "rro": read-only through all submounts (mount_setattr)
}

type flagOpt struct {
	clear bool
	flag  uintptr
}

// mountFlagTable maps every option the runtime-spec names to mount(2) flags.
var mountFlagTable = map[string]flagOpt{
	"async":         {true, unix.MS_SYNCHRONOUS},
	"atime":         {true, unix.MS_NOATIME},
	"bind":          {false, unix.MS_BIND},
	"defaults":      {false, 0},
	"dev":           {true, unix.MS_NODEV},
	"diratime":      {true, unix.MS_NODIRATIME},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"exec":          {true, unix.MS_NOEXEC},
	"iversion":      {false, unix.MS_I_VERSION},
	"lazytime":      {false, unix.MS_LAZYTIME},
	"loud":          {true, unix.MS_SILENT},
	"mand":          {false, unix.MS_MANDLOCK},
	"noatime":       {false, unix.MS_NOATIME},
	"nodev":         {false, unix.MS_NODEV},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"noexec":        {false, unix.MS_NOEXEC},
	"noiversion":    {true, unix.MS_I_VERSION},
	"nolazytime":    {true, unix.MS_LAZYTIME},
	"nomand":        {true, unix.MS_MANDLOCK},
	"norelatime":    {true, unix.MS_RELATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"nosuid":        {false, unix.MS_NOSUID},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"remount":       {false, unix.MS_REMOUNT},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"silent":        {false, unix.MS_SILENT},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"suid":          {true, unix.MS_NOSUID},
	"sync":          {false, unix.MS_SYNCHRONOUS},
}

var propagationTable = map[string]uintptr{
	"private":     unix.MS_PRIVATE,
	"rprivate":    unix.MS_PRIVATE | unix.MS_REC,
	"shared":      unix.MS_SHARED,
	"rshared":     unix.MS_SHARED | unix.MS_REC,
	"slave":       unix.MS_SLAVE,
	"rslave":      unix.MS_SLAVE | unix.MS_REC,
	"unbindable":  unix.MS_UNBINDABLE,
	"runbindable": unix.MS_UNBINDABLE | unix.MS_REC,
}

func parseMountOptions(options []string) mountOpts {
	var m mountOpts
	for _, o := range options {
		if f, ok := mountFlagTable[o]; ok {
			if f.clear {
				m.flags &^= f.flag
				m.clear |= f.flag
			} else {
				m.flags |= f.flag
			}
			continue
		}
		if p, ok := propagationTable[o]; ok {
			m.propagation = append(m.propagation, p)
			continue
		}
		switch o {
		case "rro":
			m.recursiveRO = true
			continue
		case "tmpcopyup", "idmap", "ridmap", "rrw", "rnosuid", "rsuid", "rnodev", "rdev", "rnoexec", "rexec":
			// Recursive attribute variants other than rro are accepted and
			// treated as their plain form is not: they are simply ignored,
			// as an older runc would.
			continue
		}
		m.data = append(m.data, o)
	}
	return m
}

func (m mountOpts) dataString() string { return strings.Join(m.data, ",") }
