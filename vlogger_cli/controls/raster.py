"""Offscreen rasterisation of a triangle mesh into a face-id buffer + depth with pyrender.

One render pass per frame gives, per pixel, WHICH triangle is visible (its id encoded in the 24 bits of the
flat, unlit RGB colour) and its depth. Everything else (float positions, part labels, reference colours,
flow) is then computed exactly in numpy from the triangle and the pixel (rasterize once, shade in numpy):
this keeps the maps in float precision although OpenGL hands back 8-bit colours.

Platform: chosen by `vlogger_cli/gl.py` (PYOPENGL_PLATFORM if set, else egl with CUDA, osmesa otherwise).
OSMesa returns RGB and no multisampling. pyrender's EGL path renders through a 4x multisampled framebuffer,
whose blended edge pixels would decode to wrong ids: under EGL its framebuffers are made single-sampled,
and render.py also drops any pixel that does not lie in its decoded triangle.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vlogger_cli.camera import Camera
from vlogger_cli.gl import ensure_gl_platform



@dataclass
class Raster:
    """face (H, W) int32: visible triangle index, -1 for background; depth (H, W) float32 metres (0 = none)."""

    face: np.ndarray
    depth: np.ndarray


def encode_ids(n: int) -> np.ndarray:
    """(n, 3) uint8 colours encoding 1..n (0 stays the background)."""
    ids = np.arange(1, n + 1, dtype=np.uint32)
    return np.stack([ids & 255, (ids >> 8) & 255, (ids >> 16) & 255], axis=-1).astype(np.uint8)


def decode_ids(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int32 face index, -1 for background."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)) - 1


def _single_sample_framebuffers() -> None:
    """Make pyrender's offscreen framebuffer single-sampled: multisampling blends the id colours of
    neighbouring triangles into meaningless ids. Process-wide (pyrender renders lose their antialiasing
    under EGL), done once."""
    import pyrender.renderer as renderer

    if getattr(renderer, "_vlogger_single_sample", False):
        return
    storage = renderer.glRenderbufferStorageMultisample

    def single(target, samples, internal_format, width, height):
        return storage(target, 0, internal_format, width, height)

    renderer.glRenderbufferStorageMultisample = single
    renderer._vlogger_single_sample = True


def _memoise_programs(cache) -> None:
    """pyrender keys its shader cache by `OpenGL.contextdata.getContext()`, which under OSMesa is a new
    value at every call: every frame compiled a new shader program and kept it (~0.4 MB and a few ms per
    frame). One renderer owns one context, so key by the shaders and defines alone."""
    compile_program = cache.get_program
    programs = {}

    def get_program(vertex_shader, fragment_shader, geometry_shader=None, defines=None):
        key = (vertex_shader, fragment_shader, geometry_shader, tuple(sorted((defines or {}).items())))
        if key not in programs:
            programs[key] = compile_program(vertex_shader, fragment_shader, geometry_shader, defines)
        return programs[key]

    cache.get_program = get_program


class FaceRasterizer:
    """Rasterises one fixed-topology mesh with new vertices each call; reuses one GL context and one
    vertex buffer (updated in place).

    faces: (F, 3) triangles (F < 2**24). Both sides of every triangle are drawn (no culling), so the
    result does not depend on the mesh's winding.
    """

    def __init__(self, faces: np.ndarray, camera: Camera):
        platform = ensure_gl_platform()
        import pyrender

        if platform == "egl":
            _single_sample_framebuffers()

        self._pyrender = pyrender
        self.faces = np.asarray(faces, dtype=np.int64)
        if len(self.faces) >= 2**24 - 1:
            raise ValueError("too many faces to encode in 24 bits")
        self.camera = camera
        # Unshared vertices: every corner of triangle f carries f's colour, so flat shading is exact.
        self._colors = np.repeat(encode_ids(len(self.faces)), 3, axis=0)
        self._material = pyrender.MetallicRoughnessMaterial(baseColorFactor=(1.0, 1.0, 1.0, 1.0),
                                                            doubleSided=True)
        self.scene = pyrender.Scene(bg_color=(0.0, 0.0, 0.0, 0.0), ambient_light=(0.0, 0.0, 0.0))
        cam = pyrender.IntrinsicsCamera(camera.fx, camera.fy, camera.cx, camera.cy,
                                        znear=camera.znear, zfar=camera.zfar)
        # pyrender takes the camera's pose in the world (camera-to-world).
        self.scene.add(cam, pose=np.linalg.inv(camera.world_to_camera))
        self._cam = cam
        self._renderer = pyrender.OffscreenRenderer(camera.width, camera.height)
        _memoise_programs(self._renderer._renderer._program_cache)
        self._primitive = None
        self._interleaved = None

    def set_camera(self, camera: Camera) -> None:
        """Move to another crop of the same view (a video edit's square follows the face): same size, focal
        lengths and pose, another principal point. Anything else needs a new rasterizer."""
        same = (camera.width, camera.height, camera.fx, camera.fy) == (self.camera.width, self.camera.height,
                                                                      self.camera.fx, self.camera.fy)
        if not same or not np.array_equal(camera.world_to_camera, self.camera.world_to_camera):
            raise ValueError("set_camera only moves the principal point; make a new FaceRasterizer for other cameras")
        self._cam.cx, self._cam.cy = camera.cx, camera.cy
        self.camera = camera

    def __call__(self, vertices: np.ndarray) -> Raster:
        """vertices (V, 3) world frame -> Raster."""
        pyrender = self._pyrender
        positions = np.asarray(vertices, dtype=np.float32)[self.faces.reshape(-1)]
        if self._primitive is None:
            self._primitive = pyrender.Primitive(positions=positions, color_0=self._colors,
                                                 material=self._material, mode=pyrender.constants.GLTF.TRIANGLES)
            self.scene.add(pyrender.Mesh([self._primitive]))
        else:
            self._upload(positions)
        flags = pyrender.RenderFlags.FLAT | pyrender.RenderFlags.SKIP_CULL_FACES
        color, depth = self._renderer.render(self.scene, flags=flags)
        face = decode_ids(color[..., :3])
        face[depth <= 0] = -1
        face[face >= len(self.faces)] = -1
        return Raster(face=face, depth=np.ascontiguousarray(depth, dtype=np.float32))

    def _upload(self, positions: np.ndarray) -> None:
        """Overwrite the primitive's vertex buffer in place (pyrender interleaves position(3) + colour(4)).
        A new primitive per frame would allocate a new GL buffer each time, and OSMesa does not give
        their memory back (~2 MB per frame leaked at 27k triangles)."""
        from OpenGL import GL

        if self._interleaved is None:
            self._interleaved = np.empty((len(positions), 7), dtype=np.float32)
            self._interleaved[:, 3:] = self._primitive.color_0
        self._interleaved[:, :3] = positions
        self._renderer._platform.make_current()
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, self._primitive._buffers[0])
        GL.glBufferSubData(GL.GL_ARRAY_BUFFER, 0, self._interleaved.nbytes, self._interleaved)
        GL.glBindBuffer(GL.GL_ARRAY_BUFFER, 0)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.delete()
            self._renderer = None

    def __enter__(self) -> "FaceRasterizer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
