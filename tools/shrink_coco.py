"""Write a copy of a YOLO-format archive (e.g. coco128.tgz) with every image shrunk to at most MAX_SIDE px on its long side.

The labels are normalised (class cx cy w h in [0, 1]), so they hold for the smaller images unchanged; every other member
(labels, data.yaml, SOURCE_COMMIT) is copied byte for byte. The output is deterministic (members sorted, times, owners and
the gzip header fixed), so the same input gives the same SHA-256, which is printed.
Usage: python tools/shrink_coco.py SRC.tgz DEST.tgz [--max-side 320] [--quality 90]
"""
import argparse, gzip, hashlib, io, sys, tarfile
from pathlib import Path

def shrink(src:Path, dest:Path, max_side:int=320, quality:int=90) -> str:
    "Write `dest` from `src` with images shrunk to `max_side` px on the long side; return its SHA-256"
    from PIL import Image
    with tarfile.open(src, 'r:*') as tf: members = [(m, tf.extractfile(m).read() if m.isfile() else None) for m in tf.getmembers()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(dest.name + '.tmp')
    n_img = 0
    with open(tmp, 'wb') as raw, gzip.GzipFile(filename='', mode='wb', fileobj=raw, mtime=0, compresslevel=9) as gz, \
         tarfile.open(fileobj=gz, mode='w', format=tarfile.USTAR_FORMAT) as out:
        for m,data in sorted(members, key=lambda md: md[0].name):
            info = tarfile.TarInfo(m.name); info.mtime,info.uid,info.gid,info.uname,info.gname = 0,0,0,'',''
            if m.isdir(): info.type,info.mode = tarfile.DIRTYPE,0o755; out.addfile(info); continue
            if not m.isfile(): continue
            if m.name.lower().endswith(('.jpg', '.jpeg', '.png')):
                with Image.open(io.BytesIO(data)) as im:
                    im = im.convert('RGB')
                    if max(im.size) > max_side:
                        s = max_side/max(im.size)
                        im = im.resize((max(1, round(im.width*s)), max(1, round(im.height*s))), Image.LANCZOS)
                    buf = io.BytesIO(); im.save(buf, 'JPEG', quality=quality); data = buf.getvalue(); n_img += 1
            info.size,info.mode = len(data),0o644
            out.addfile(info, io.BytesIO(data))
    tmp.replace(dest)
    sha = hashlib.sha256(dest.read_bytes()).hexdigest()
    print(f'{dest}: {n_img} images at most {max_side} px, {dest.stat().st_size/2**20:.1f} MiB (from {src.stat().st_size/2**20:.1f}), sha256 {sha}', file=sys.stderr)
    return sha

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('src', type=Path); p.add_argument('dest', type=Path)
    p.add_argument('--max-side', type=int, default=320); p.add_argument('--quality', type=int, default=90)
    a = p.parse_args()
    print(shrink(a.src, a.dest, a.max_side, a.quality))
