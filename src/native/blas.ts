// Which BLAS a library file is, from its real path. Debian's libblas.so.3 is an
// alternatives symlink: OpenBLAS and the reference BLAS share that name, and
// the reference one is ~25× slower for libtorch's matmul (DESIGN.md), so
// callers must pass the path with every symlink resolved (fs.realpathSync).

/** What serves BLAS: a fast implementation, the slow reference one, or neither known. */
export type BlasKind = 'openblas' | 'mkl' | 'blis' | 'atlas' | 'accelerate' | 'bundled' | 'reference' | 'none' | 'unknown';

/** The fix for the reference-BLAS trap on Debian and Ubuntu. */
export const BLAS_FIX = 'sudo apt-get install -y libopenblas0-pthread';

/**
 * Classifies the file that serves `sgemm_` by its real path: the reference BLAS
 * (e.g. /usr/lib/x86_64-linux-gnu/blas/libblas.so.3) is 'reference', OpenBLAS
 * (.../openblas-pthread/libblas.so.3, libopenblas*.so) is 'openblas', an empty
 * path is 'none'. Only 'reference' is a problem; 'none' and 'unknown' are
 * worth a look.
 */
export function classifyBlas(realPath: string | null | undefined): BlasKind {
  if (realPath == null || realPath.trim() === '') return 'none';
  const p = realPath.toLowerCase().replace(/\\/g, '/');
  const base = p.slice(p.lastIndexOf('/') + 1);
  const dirs = p.split('/').slice(0, -1);
  if (/openblas/.test(p)) return 'openblas';
  if (/(^|[/_-])mkl|libmkl/.test(p)) return 'mkl';
  if (/blis/.test(p)) return 'blis';
  if (/atlas/.test(p)) return 'atlas';
  if (/accelerate\.framework|veclib/.test(p)) return 'accelerate';
  // pip wheels link their BLAS (MKL) into libtorch_cpu itself
  if (/^libtorch(_cpu)?\.so/.test(base)) return 'bundled';
  // netlib's libblas / librefblas: Debian's blas/ alternative, Fedora's /usr/lib64/libblas.so.3
  if (/^lib(ref)?blas\.so/.test(base) || /^libblas64?\.so/.test(base) || dirs.includes('blas')) return 'reference';
  return 'unknown';
}

/** Whether a BLAS kind is one libtorch runs fast with. */
export function isFastBlas(kind: BlasKind): boolean {
  return kind === 'openblas' || kind === 'mkl' || kind === 'blis' || kind === 'atlas' || kind === 'accelerate' || kind === 'bundled';
}
