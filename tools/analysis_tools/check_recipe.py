"""Hold configs against the official recipes of the paper rows they stand for.

    python tools/analysis_tools/check_recipe.py [RECIPES.yml | FAMILY ...] [--config NAME]
                                                [--verbose] [--markdown]

With no argument every ``configs/*/recipes.yml`` is checked. Each config is resolved as
``tools/train.py`` reads it and its optimizer is built (model on the meta device); every recorded
field (batch, optimizer, lr, weight decay and its exclusions, schedule, augmentation, sizes,
precision, seeds, TTA, the effective lr and weight decay of representative parameters) is
compared with the official value. Prints one line per config (``ok``, ``N deviations``, or the
mismatches), every field with ``--verbose``; exits 1 on any undeclared difference.
``--markdown`` prints each family's per-row table for its README instead.
"""
import argparse
import glob
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Check configs against the official recipes')
    parser.add_argument('recipes', nargs='*',
                        help='recipes.yml files or family names (default: every family)')
    parser.add_argument('--config', help='only the entry of this config (file name, .py optional)')
    parser.add_argument('--verbose', action='store_true', help='print every field')
    parser.add_argument('--markdown', action='store_true',
                        help="print the README table of each family's paper rows")
    args = parser.parse_args(argv)
    if args.markdown and args.verbose:
        parser.error('--verbose and --markdown exclude each other: --markdown prints the README '
                     'tables, --verbose the field-by-field check')
    return args


def recipe_files(items):
    if not items:
        return sorted(glob.glob(osp.join(REPO, 'configs', '*', 'recipes.yml')))
    files = []
    for item in items:
        path = item if item.endswith('.yml') else osp.join(REPO, 'configs', item, 'recipes.yml')
        if not osp.isfile(path):
            sys.exit(f'check_recipe.py: {item}: no such recipes file ({path})')
        files.append(path)
    return files


def _short(value, width=60):
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + '...'


def main():
    args = parse_args()
    import visionllama_mm  # noqa: F401
    from visionllama_mm.recipes import check_entry, format_markdown, load_records
    failed = 0
    files, matched, known = recipe_files(args.recipes), 0, []
    for path in files:
        entries = load_records(path)
        if args.config:
            known += [osp.basename(e['config']) for e in entries]
            name = args.config if args.config.endswith('.py') else args.config + '.py'
            entries = [e for e in entries if osp.basename(e['config']) == osp.basename(name)]
            matched += len(entries)
        if args.markdown:
            print(f'## {osp.relpath(path, REPO)}\n\n{format_markdown(entries)}\n')
            continue
        for entry in entries:
            rows = check_entry(entry)
            bad = [r for r in rows if r['status'] == 'MISMATCH']
            devs = [r for r in rows if r['status'] == 'deviation']
            failed += bool(bad)
            summary = (f'{len(bad)} MISMATCH' if bad else 'ok') + (
                f', {len(devs)} declared deviation(s)' if devs else '')
            print(f'{entry["config"]}: {len(rows)} fields, {summary}')
            for row in rows:
                if args.verbose or row['status'] != 'ok':
                    print(f'  [{row["status"]}] {row["key"]}: official {_short(row["official"])}'
                          f', ours {_short(row["ours"])} -- {row["note"]}')
    if args.config and not matched:
        import difflib
        name = osp.basename(args.config if args.config.endswith('.py') else args.config + '.py')
        close = difflib.get_close_matches(name, sorted(set(known)), n=3, cutoff=0.5)
        sys.exit(f'check_recipe.py: --config {args.config}: no entry of '
                 f'{", ".join(osp.relpath(p, REPO) for p in files)} is for this config '
                 f'({len(set(known))} configs have records)'
                 + (f'; did you mean {", ".join(close)}?' if close else ''))
    if failed:
        sys.exit(f'check_recipe.py: {failed} config(s) differ from their recipe record')


if __name__ == '__main__':
    main()
