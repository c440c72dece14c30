#include "textflag.h"

// func cloneVM(args *cloneArgs, size uintptr, a *directArgs) (pid uintptr, errno uintptr)
//
// clone3 with CLONE_VM and a stack of its own for the child (args.stack):
// the child cannot return into Go code on a stack that is not the one it
// was called on, so it calls directChildVM(a) from here and never returns.
TEXT ·cloneVM(SB),NOSPLIT,$0-40
	MOVQ	args+0(FP), DI
	MOVQ	size+8(FP), SI
	MOVQ	a+16(FP), R12 // survives the syscall: the child finds it there
	MOVQ	$435, AX      // SYS_clone3
	SYSCALL
	CMPQ	AX, $0xfffffffffffff001
	JLS	ok
	MOVQ	$-1, pid+24(FP)
	NEGQ	AX
	MOVQ	AX, errno+32(FP)
	RET
ok:
	TESTQ	AX, AX
	JEQ	child
	MOVQ	AX, pid+24(FP)
	MOVQ	$0, errno+32(FP)
	RET
child:
	// SP is the top of the child's stack. ABI0 call: the argument at 0(SP).
	ANDQ	$~15, SP
	SUBQ	$16, SP
	MOVQ	R12, 0(SP)
	CALL	·directChildVM(SB)
	MOVL	$1, DI
	MOVL	$231, AX // SYS_exit_group
	SYSCALL
	INT	$3
