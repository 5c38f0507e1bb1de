"""The vtuber studio: poses turned into avatars, on still images, in videos and live in a browser page.

- `avatar/`: the avatar definitions (YAML), the rig that completes a pose, drawing, scenes and backgrounds.
- `motion`: following people across frames (track ids) and One Euro smoothing.
- `video`: reading, animating and writing videos and webcams; `match`: how alike two poses are.
- `live/`: the live page served at /studio (socket protocol, sessions, the app, web/ with the page's ES modules).
"""
