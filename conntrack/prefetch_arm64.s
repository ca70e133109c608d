#include "textflag.h"

// func prefetch(addr uintptr)
TEXT ·prefetch(SB), NOSPLIT|NOFRAME, $0-8
	MOVD	addr+0(FP), R0
	PRFM	(R0), PLDL1KEEP
	RET

// func prefetchN(addrs *uintptr, n int)
TEXT ·prefetchN(SB), NOSPLIT|NOFRAME, $0-16
	MOVD	addrs+0(FP), R1
	MOVD	n+8(FP), R2
	CMP	$0, R2
	BLE	done
loop:
	MOVD.P	8(R1), R0
	PRFM	(R0), PLDL1KEEP
	SUB	$1, R2
	CBNZ	R2, loop
done:
	RET
