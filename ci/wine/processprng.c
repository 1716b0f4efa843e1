/*
 * bcryptprimitives.dll for Wine 8, which lacks it: Rust's std (1.78 and
 * later) imports ProcessPrng from it, and without this DLL any Rust program
 * fails to load under Wine 8 (exit 53, silently with WINEDEBUG=-all).
 * ProcessPrng fills a buffer with random bytes; advapi32's SystemFunction036
 * (RtlGenRandom) does the same for at most ULONG bytes at a time.
 */
#include <windows.h>

typedef BOOLEAN (WINAPI *rtl_gen_random_fn)(PVOID, ULONG);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    static rtl_gen_random_fn gen;
    if (!gen) {
        HMODULE advapi = LoadLibraryA("advapi32.dll");
        if (!advapi)
            return FALSE;
        gen = (rtl_gen_random_fn)GetProcAddress(advapi, "SystemFunction036");
        if (!gen)
            return FALSE;
    }
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (!gen(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
