package runtime

// cloneVMSupported: this architecture has cloneVM.
const cloneVMSupported = true

// cloneVM is clone3 for a direct child that shares berth's memory
// (clonevm_linux_amd64.s).
//
//go:noescape
func cloneVM(args *cloneArgs, size uintptr, a *directArgs) (pid uintptr, errno uintptr)
