/** The lines of the retention commands in `eris --help`: here, so the help needs none of the commands' modules. */
export const GC_SYNOPSIS = '  eris gc --cache NAME [--dry-run] [--delete] [--json] [--config FILE | --store-root DIR --state-dir DIR] [--keep-days N] [--max-bytes B]';
export const PIN_SYNOPSIS = '  eris pin NAME PATH --cache NAME [--keep-revisions N] [--config FILE | --store-root DIR]';
export const UNPIN_SYNOPSIS = '  eris unpin NAME --cache NAME [--config FILE | --store-root DIR]';
export const PINS_SYNOPSIS = '  eris pins --cache NAME [--json] [--config FILE | --store-root DIR]';
