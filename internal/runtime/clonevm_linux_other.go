//go:build linux && !amd64

package runtime

// cloneVMSupported: cloneVM has no assembly for this architecture; direct
// children are forked (directClone) instead.
const cloneVMSupported = false

func cloneVM(args *cloneArgs, size uintptr, a *directArgs) (pid uintptr, errno uintptr) {
	panic("cloneVM: not supported on this architecture")
}
