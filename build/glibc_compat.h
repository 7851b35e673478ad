/* Force-included (gcc -include) in every C file of the portable build's SQLite
 * and CPython, see build/portable_toolchain.sh.
 *
 * glibc 2.29 gave exp, exp2, log, log2 and pow new symbol versions (the same
 * functions without the old SVID error-handling wrapper), so anything compiled
 * on Debian 11 links to GLIBC_2.29 and won't load on glibc 2.28 (RHEL 8).
 * Binding to the original x86_64 versions keeps the results (IEEE mode) and
 * lowers the floor; build/glibc_floor.py checks what the files really need. */
#if defined(__x86_64__) && defined(__linux__)
__asm__(".symver exp,exp@GLIBC_2.2.5");
__asm__(".symver exp2,exp2@GLIBC_2.2.5");
__asm__(".symver log,log@GLIBC_2.2.5");
__asm__(".symver log2,log2@GLIBC_2.2.5");
__asm__(".symver pow,pow@GLIBC_2.2.5");
#endif
