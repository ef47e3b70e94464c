# probe.S: the KVM probe, a 512-byte boot sector (assembled into probe.bin,
# which go:embed puts in the binary; `go generate ./internal/accel` rebuilds it).
#
# It switches to 64-bit long mode, prints GODWIT-PROBE-LM on COM1, then takes
# 204800 page faults (a handler maps each 4 KiB page on demand, the way a
# Linux kernel's early boot does), and prints GODWIT-PROBE-OK. Hardware KVM
# runs the fault loop far faster than TCG; a software-served /dev/kvm (such as
# kvm_pvm) runs it slower, and a stock 64-bit kernel never boots there. So the
# host times LM -> OK under kvm and under TCG and keeps KVM only if it wins.
.code16
.globl _start
_start:
  cli
  xor %ax,%ax
  mov %ax,%ds
  mov %ax,%es
  mov %ax,%ss
  mov $0x7c00,%esp
  cld
  mov $0x1000,%di
  mov $4096,%cx
  xor %eax,%eax
  rep stosl
  movl $0x2003,0x1000
  movl $0x3003,0x2000
  movl $0x83,0x3000
  movl $0x4003,0x3008
  mov $0x1000,%eax
  mov %eax,%cr3
  mov %cr4,%eax
  or $0x20,%eax
  mov %eax,%cr4
  mov $0xC0000080,%ecx
  rdmsr
  or $0x100,%eax
  wrmsr
  lgdtl gdtr
  mov %cr0,%eax
  or $0x80000001,%eax
  mov %eax,%cr0
  ljmpl $0x08,$lm
.code64
lm:
  mov $pfh,%eax
  mov %ax,idt+14*16
  movw $0x08,idt+14*16+2
  movw $0x8E00,idt+14*16+4
  lidt idtr
  mov $msg1,%rsi
  call puts
  mov $400,%r8
1: mov $0x200000,%rbx
2: mov %rbx,(%rbx)
  add $0x1000,%rbx
  cmp $0x400000,%rbx
  jb 2b
  mov $0x4000,%rdi
  mov $512,%rcx
  xor %eax,%eax
  rep stosq
  mov %cr3,%rax
  mov %rax,%cr3
  dec %r8
  jnz 1b
  mov $msg2,%rsi
  call puts
3: hlt
  jmp 3b
pfh:
  push %rax
  push %rbx
  mov %cr2,%rax
  and $~0xfff,%rax
  mov %rax,%rbx
  sub $0x200000,%rbx
  shr $9,%rbx
  or $3,%rax
  mov %rax,0x4000(%rbx)
  pop %rbx
  pop %rax
  add $8,%rsp
  iretq
puts:
  mov $0x3f8,%dx
4: lodsb
  test %al,%al
  jz 5f
  out %al,%dx
  jmp 4b
5: ret
.align 8
gdt: .quad 0
  .quad 0x00209A0000000000
  .quad 0x0000920000000000
gdtr: .word 23
  .long gdt
idtr: .word 256*16-1
  .quad idt
msg1: .asciz "GODWIT-PROBE-LM\n"
msg2: .asciz "GODWIT-PROBE-OK\n"
.org 510
.word 0xaa55
idt = 0x5000
